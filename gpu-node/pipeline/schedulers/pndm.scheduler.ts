// diffusers' PNDMScheduler (pseudo numerical methods, Liu et al. 2022). SD's config sets skip_prk_steps, which
// makes it PLMS: linear multistep on the noise predictions, warmed up by one repeated timestep. The Runge-Kutta
// warm-up (skip_prk_steps false, the class default) is kept for configs that ask for it.
import type { NoiseSource } from "./scheduler.types.js";
import { alphasCumprod, f32, makeBetas } from "./noise-schedule.js";
import { checkPredictionType, configError, readConfig, type ResolvedConfig } from "./scheduler.base.js";
import { AlphaScheduler } from "./alpha-scheduler.base.js";

export const PNDM_DEFAULTS = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: "linear",
  trained_betas: null as number[] | null,
  skip_prk_steps: false,
  set_alpha_to_one: false,
  prediction_type: "epsilon",
  timestep_spacing: "leading",
  steps_offset: 0,
};
export type PNDMConfig = typeof PNDM_DEFAULTS;

const NAME = "PNDMScheduler";
const PNDM_ORDER = 4;

/** c * x in float32, with c a Python float that torch rounds to float32 first. */
const scale = (x: Float32Array, c: number): Float32Array => {
  const k = f32(c);
  return x.map((v) => v * k);
};
const combine = (a: Float32Array, b: Float32Array, op: (x: number, y: number) => number): Float32Array =>
  a.map((v, i) => op(v, b[i]));
const plus = (x: number, y: number) => x + y;
const minus = (x: number, y: number) => x - y;

export class PNDMScheduler extends AlphaScheduler<PNDMConfig> {
  private prkTimesteps: number[] = [];
  // Multistep state, as diffusers keeps it: past noise predictions, the step counter, the sample held across the
  // repeated first timestep (PLMS) or the four Runge-Kutta stages (PRK), and the running RK sum.
  private ets: Float32Array[] = [];
  private counter = 0;
  private curSample: Float32Array | null = null;
  private curModelOutput: Float32Array | null = null;

  constructor(resolved: ResolvedConfig) {
    const config = readConfig(NAME, PNDM_DEFAULTS, resolved);
    checkPredictionType(NAME, config.prediction_type, ["epsilon", "v_prediction"]);
    super(NAME, config, alphasCumprod(makeBetas(config)));
  }

  setTimesteps(numInferenceSteps: number): void {
    const c = this.config;
    // diffusers' _timesteps: ascending.
    const ascending = this.spacedTimesteps(numInferenceSteps).reverse();
    let plms: number[];
    if (c.skip_prk_steps) {
      // [t_0 .. t_{n-2}, t_{n-2}, t_{n-1}] reversed: the second timestep repeats to warm PLMS up.
      this.prkTimesteps = [];
      plms = [...ascending.slice(0, -1), ascending[ascending.length - 2], ascending[ascending.length - 1]]
        .filter((t) => t !== undefined)
        .reverse();
    } else {
      const half = Math.floor(Math.floor(c.num_train_timesteps / numInferenceSteps) / 2);
      const tail = ascending.slice(-PNDM_ORDER);
      const prk = tail.flatMap((t) => [t, t + half]);
      // prk[:-1].repeat(2)[1:-1] reversed
      const repeated = prk.slice(0, -1).flatMap((t) => [t, t]).slice(1, -1);
      this.prkTimesteps = repeated.reverse();
      plms = ascending.slice(0, -3).reverse();
    }
    this.timesteps = Float64Array.from([...this.prkTimesteps, ...plms]);
    this.ets = [];
    this.counter = 0;
    this.curModelOutput = null;
    this.curSample = null;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, _noise: NoiseSource): Float32Array {
    this.checkStep(modelOutput, sample);
    if (this.counter < this.prkTimesteps.length && !this.config.skip_prk_steps) {
      return this.stepPrk(modelOutput, timestep, sample);
    }
    return this.stepPlms(modelOutput, timestep, sample);
  }

  private stepPrk(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    const ratio = this.stepRatio;
    const diffToPrev = this.counter % 2 ? 0 : Math.floor(ratio / 2);
    const prevTimestep = timestep - diffToPrev;
    const stageTimestep = this.prkTimesteps[Math.floor(this.counter / 4) * 4];
    let output = modelOutput;
    // diffusers starts the running sum at the int 0, so the first addition is exact.
    const accumulate = (c: number) => {
      const term = scale(modelOutput, c);
      this.curModelOutput = this.curModelOutput ? combine(this.curModelOutput, term, plus) : term;
    };
    const stage = this.counter % 4;
    if (stage === 0) {
      accumulate(1 / 6);
      this.ets.push(modelOutput.slice());
      this.curSample = sample.slice();
    } else if (stage === 1 || stage === 2) {
      accumulate(1 / 3);
    } else {
      const last = scale(modelOutput, 1 / 6);
      output = this.curModelOutput ? combine(this.curModelOutput, last, plus) : last;
      this.curModelOutput = null;
    }
    const prev = this.prevSample(this.curSample ?? sample, stageTimestep, prevTimestep, output);
    this.counter += 1;
    return prev;
  }

  private stepPlms(modelOutput: Float32Array, timestep: number, sample: Float32Array): Float32Array {
    if (!this.config.skip_prk_steps && this.ets.length < 3) {
      throw configError(NAME, "PLMS steps can only run after at least 12 Runge-Kutta steps");
    }
    const ratio = this.stepRatio;
    let prevTimestep = timestep - ratio;
    let t = timestep;
    if (this.counter !== 1) {
      this.ets = this.ets.slice(-3);
      this.ets.push(modelOutput.slice());
    } else {
      prevTimestep = timestep;
      t = timestep + ratio;
    }
    const e = this.ets;
    const n = e.length;
    let output: Float32Array;
    let x = sample;
    if (n === 1 && this.counter === 0) {
      output = modelOutput;
      this.curSample = sample.slice();
    } else if (n === 1 && this.counter === 1) {
      output = combine(modelOutput, e[n - 1], plus).map((v) => v / 2);
      x = this.curSample ?? sample;
      this.curSample = null;
    } else if (n === 2) {
      output = combine(scale(e[n - 1], 3), e[n - 2], minus).map((v) => v / 2);
    } else if (n === 3) {
      const s = combine(combine(scale(e[n - 1], 23), scale(e[n - 2], 16), minus), scale(e[n - 3], 5), plus);
      output = s.map((v) => v / 12);
    } else {
      const s = combine(
        combine(combine(scale(e[n - 1], 55), scale(e[n - 2], 59), minus), scale(e[n - 3], 37), plus),
        scale(e[n - 4], 9),
        minus,
      );
      output = scale(s, 1 / 24);
    }
    const prev = this.prevSample(x, t, prevTimestep, output);
    this.counter += 1;
    return prev;
  }

  /** Formula (9) of the PNDM paper: x_{t-δ} from x_t and the (combined) noise prediction. */
  private prevSample(sample: Float32Array, timestep: number, prevTimestep: number, modelOutput: Float32Array): Float32Array {
    const alphaProd = this.alphaAt(timestep);
    const alphaProdPrev = this.alphaBefore(prevTimestep);
    const betaProd = f32(1 - alphaProd);
    const betaProdPrev = f32(1 - alphaProdPrev);
    let eps = modelOutput;
    if (this.config.prediction_type === "v_prediction") {
      const a = f32(Math.sqrt(alphaProd));
      const b = f32(Math.sqrt(betaProd));
      eps = modelOutput.map((v, i) => f32(a * v) + f32(b * sample[i]));
    }
    const sampleCoeff = f32(Math.sqrt(f32(alphaProdPrev / alphaProd)));
    const denom = f32(
      f32(alphaProd * f32(Math.sqrt(betaProdPrev))) + f32(Math.sqrt(f32(f32(alphaProd * betaProd) * alphaProdPrev))),
    );
    const diff = f32(alphaProdPrev - alphaProd);
    return sample.map((x, i) => f32(sampleCoeff * x) - f32(f32(diff * eps[i]) / denom));
  }
}
