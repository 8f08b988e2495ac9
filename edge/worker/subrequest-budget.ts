// Workers cap the subrequests of one invocation (50 on the Free plan; 1,000 on Paid, raised to 10,000 in the
// current limits page): every fetch counts, the libSQL client's HTTP calls and the gRPC-web calls included.
// A queue consumer holding a long generation writes progress, renews its lease and talks to the GPU node, so it
// counts what it has used and hands the task over to a fresh invocation before the platform would fail it.

export class SubrequestBudget {
  #used = 0;

  constructor(readonly limit: number) {}

  get used(): number {
    return this.#used;
  }

  get remaining(): number {
    return this.limit - this.#used;
  }

  /** `base`, counting each call against this budget. */
  wrap(base: typeof globalThis.fetch = (input, init) => globalThis.fetch(input, init)): typeof globalThis.fetch {
    return (input, init) => {
      this.#used++;
      return base(input, init);
    };
  }
}
