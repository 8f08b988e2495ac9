// The 32-bit Mersenne Twister exactly as PyTorch's CPU generator runs it (ATen's mt19937_engine): the standard
// init_genrand seeding from the low 32 bits of the 64-bit seed, and the standard twist/temper.

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;
const TWO_POW_32 = 4294967296;

export class Mt19937 {
  private readonly state = new Uint32Array(N);
  private next = 0;
  /** Outputs left before the next twist; 1 after seeding so the first call twists, as ATen does. */
  private left = 1;

  /** `seed` is a non-negative safe integer; like ATen, only its low 32 bits enter the state. */
  constructor(seed: number) {
    const state = this.state;
    state[0] = seed % TWO_POW_32;
    for (let i = 1; i < N; i++) {
      const prev = state[i - 1];
      state[i] = Math.imul(1812433253, prev ^ (prev >>> 30)) + i;
    }
  }

  nextUint32(): number {
    if (--this.left === 0) this.twist();
    let y = this.state[this.next++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  private twist(): void {
    const s = this.state;
    let i = 0;
    for (; i < N - M; i++) {
      const y = (s[i] & UPPER_MASK) | (s[i + 1] & LOWER_MASK);
      s[i] = s[i + M] ^ (y >>> 1) ^ (s[i + 1] & 1 ? MATRIX_A : 0);
    }
    for (; i < N - 1; i++) {
      const y = (s[i] & UPPER_MASK) | (s[i + 1] & LOWER_MASK);
      s[i] = s[i + M - N] ^ (y >>> 1) ^ (s[i + 1] & 1 ? MATRIX_A : 0);
    }
    const y = (s[N - 1] & UPPER_MASK) | (s[0] & LOWER_MASK);
    s[N - 1] = s[M - 1] ^ (y >>> 1) ^ (s[0] & 1 ? MATRIX_A : 0);
    this.left = N;
    this.next = 0;
  }
}
