// The schedulers a request may name: the nine diffusers classes of the spec, and the A1111 names the
// original service accepted (case-insensitive). The edge validates with this; gpu-node builds from it.

export const SCHEDULER_CLASSES = [
  "DPMSolverMultistepScheduler",
  "DDIMScheduler",
  "EulerDiscreteScheduler",
  "EulerAncestralDiscreteScheduler",
  "PNDMScheduler",
  "LMSDiscreteScheduler",
  "HeunDiscreteScheduler",
  "KDPM2DiscreteScheduler",
  "KDPM2AncestralDiscreteScheduler",
] as const;

export type SchedulerClass = (typeof SCHEDULER_CLASSES)[number];

/** Config keys an alias sets on top of the model's scheduler_config.json (diffusers' from_config kwargs). */
export interface SchedulerOverrides {
  use_karras_sigmas?: boolean;
  algorithm_type?: "dpmsolver++" | "sde-dpmsolver++";
}

export interface ResolvedScheduler {
  /** The name as the client should see it echoed back (canonical spelling). */
  name: string;
  className: SchedulerClass;
  overrides: SchedulerOverrides;
}

const ALIASES: ReadonlyArray<[name: string, className: SchedulerClass, overrides: SchedulerOverrides]> = [
  ["Euler", "EulerDiscreteScheduler", {}],
  ["Euler a", "EulerAncestralDiscreteScheduler", {}],
  ["LMS", "LMSDiscreteScheduler", {}],
  ["LMS Karras", "LMSDiscreteScheduler", { use_karras_sigmas: true }],
  ["Heun", "HeunDiscreteScheduler", {}],
  ["DPM2", "KDPM2DiscreteScheduler", {}],
  ["DPM2 Karras", "KDPM2DiscreteScheduler", { use_karras_sigmas: true }],
  ["DPM2 a", "KDPM2AncestralDiscreteScheduler", {}],
  ["DPM2 a Karras", "KDPM2AncestralDiscreteScheduler", { use_karras_sigmas: true }],
  ["DPM++ 2M", "DPMSolverMultistepScheduler", {}],
  ["DPM++ 2M Karras", "DPMSolverMultistepScheduler", { use_karras_sigmas: true }],
  ["DPM++ 2M SDE", "DPMSolverMultistepScheduler", { algorithm_type: "sde-dpmsolver++" }],
  ["DPM++ 2M SDE Karras", "DPMSolverMultistepScheduler", { algorithm_type: "sde-dpmsolver++", use_karras_sigmas: true }],
  ["DPM++ SDE", "DPMSolverMultistepScheduler", { algorithm_type: "sde-dpmsolver++" }],
  ["DPM++ SDE Karras", "DPMSolverMultistepScheduler", { algorithm_type: "sde-dpmsolver++", use_karras_sigmas: true }],
  // diffusers has no multistep class for A1111's single-step ancestral sampler; the closest of the nine
  // is the stochastic (SDE) DPM++ variant, which keeps its "fresh noise every step" character.
  ["DPM++ 2S a", "DPMSolverMultistepScheduler", { algorithm_type: "sde-dpmsolver++" }],
  ["DDIM", "DDIMScheduler", {}],
  ["PLMS", "PNDMScheduler", {}],
];

const BY_LOWER_NAME = new Map<string, ResolvedScheduler>();
for (const className of SCHEDULER_CLASSES) {
  BY_LOWER_NAME.set(className.toLowerCase(), { name: className, className, overrides: {} });
}
for (const [name, className, overrides] of ALIASES) {
  BY_LOWER_NAME.set(name.toLowerCase(), { name, className, overrides });
}

/** Every accepted spelling, for error messages and the OpenAPI description. */
export const SCHEDULER_NAMES: readonly string[] = [...SCHEDULER_CLASSES, ...ALIASES.map(([name]) => name)];

/** Resolves a request's scheduler name (case-insensitive, surrounding blanks ignored); null when unknown. */
export function resolveScheduler(name: string): ResolvedScheduler | null {
  const found = BY_LOWER_NAME.get(name.trim().replace(/\s+/g, " ").toLowerCase());
  return found ? { ...found, overrides: { ...found.overrides } } : null;
}
