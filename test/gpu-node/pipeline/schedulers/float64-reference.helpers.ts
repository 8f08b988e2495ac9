// SD 1.x's noise schedule written plainly in float64 from diffusers' formulas (scaled_linear betas 0.00085 ..
// 0.012 over 1000 training steps), independent of the port's float32 emulation.
export const N = 1000;

export const linspace = (a: number, b: number, n: number): number[] =>
  n === 1 ? [a] : Array.from({ length: n }, (_, i) => (i === n - 1 ? b : a + ((b - a) * i) / (n - 1)));

const betas = linspace(Math.sqrt(0.00085), Math.sqrt(0.012), N).map((r) => r * r);
export const alphaBar: number[] = [];
betas.reduce((acc, b) => (alphaBar.push(acc * (1 - b)), acc * (1 - b)), 1);
export const trainSigma = alphaBar.map((a) => Math.sqrt((1 - a) / a));
const logTrainSigma = trainSigma.map(Math.log);

/** np.interp of the training sigmas at a (fractional) timestep. */
export const sigmaAt = (t: number): number => {
  const j = Math.min(Math.floor(t), N - 2);
  return trainSigma[j] + (trainSigma[j + 1] - trainSigma[j]) * (t - j);
};

/** The sigma diffusers' _sigma_to_t would map to t (log-linear between training steps). */
export const sigmaOfT = (t: number): number => {
  const j = Math.min(Math.max(Math.floor(t), 0), N - 2);
  return Math.exp(logTrainSigma[j] + (logTrainSigma[j + 1] - logTrainSigma[j]) * (t - j));
};

/** diffusers' _sigma_to_t: the fractional timestep whose log-sigma matches. */
export const tOfSigma = (s: number): number => {
  const ls = Math.log(s);
  let j = 0;
  while (j < N - 2 && logTrainSigma[j + 1] <= ls) j++;
  const w = (ls - logTrainSigma[j]) / (logTrainSigma[j + 1] - logTrainSigma[j]);
  return j + Math.min(Math.max(w, 0), 1);
};
