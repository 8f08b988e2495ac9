// LMS's integrated coefficients: diffusers integrates the Lagrange basis with scipy.integrate.quad; the port
// integrates exactly (Gauss-Legendre), so these are checked against closed forms.
import { describe, expect, it } from "vitest";
import { LMSDiscreteScheduler, integratePolynomial } from "../../../../gpu-node/pipeline/schedulers/lms-discrete.scheduler.js";

const SD = { beta_start: 0.00085, beta_end: 0.012, beta_schedule: "scaled_linear" };

describe("LMS coefficients", () => {
  it("integrates polynomials up to degree 9 exactly", () => {
    const p = (x: number) => 3 * x ** 9 - x ** 4 + 2 * x - 7;
    const P = (x: number) => (3 * x ** 10) / 10 - x ** 5 / 5 + x * x - 7 * x;
    expect(integratePolynomial(p, -0.3, 1.7)).toBeCloseTo(P(1.7) - P(-0.3), 10);
  });

  it("the coefficients of one step sum to σ_{i+1} - σ_i (they integrate a partition of unity)", () => {
    const s = new LMSDiscreteScheduler(SD);
    s.setTimesteps(12);
    for (const i of [0, 1, 2, 3, 7, 11]) {
      const order = Math.min(i + 1, 4);
      let sum = 0;
      for (let k = 0; k < order; k++) sum += s.lmsCoefficient(order, i, k);
      expect(sum).toBeCloseTo(s.sigmas[i + 1] - s.sigmas[i], 12);
    }
  });

  it("second order matches the closed form of ∫ (τ - σ_{i-1}) / (σ_i - σ_{i-1}) dτ", () => {
    const s = new LMSDiscreteScheduler(SD);
    s.setTimesteps(10);
    const [a, b, prev] = [s.sigmas[3], s.sigmas[4], s.sigmas[2]];
    const exact = ((b - prev) ** 2 - (a - prev) ** 2) / 2 / (a - prev);
    expect(s.lmsCoefficient(2, 3, 0)).toBeCloseTo(exact, 12);
  });
});
