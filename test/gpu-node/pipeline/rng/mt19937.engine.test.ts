import { describe, expect, it } from "vitest";
import { Mt19937 } from "../../../../gpu-node/pipeline/rng/mt19937.engine.js";

describe("Mt19937", () => {
  // Reference outputs of the standard MT19937 (init_genrand(5489)): the first value and the 10000th
  // (the C++ standard requires the latter of std::mt19937).
  it("reproduces the standard mt19937 sequence for seed 5489", () => {
    const mt = new Mt19937(5489);
    expect(mt.nextUint32()).toBe(3499211612);
    for (let i = 2; i < 10000; i++) mt.nextUint32();
    expect(mt.nextUint32()).toBe(4123659995);
  });

  it("returns unsigned 32-bit integers across several twists", () => {
    const mt = new Mt19937(1);
    for (let i = 0; i < 2000; i++) {
      const v = mt.nextUint32();
      expect(Number.isInteger(v) && v >= 0 && v < 2 ** 32).toBe(true);
    }
  });
});
