// Builds a request's scheduler the way the original service did: `X.from_config(pipe.scheduler.config, **overrides)`
// in diffusers 0.33. Keys the model's scheduler_config.json sets carry over; keys it lacks take the CHOSEN class's
// defaults (diffusers drops the loaded class's `_use_default_values` on from_config), so with SD 1.5's file DDIM
// and PNDM space timesteps "leading" while Euler, LMS, Heun, KDPM2 and DPM++ use "linspace".
import type { SchedulerClass, SchedulerOverrides } from "../../../shared/schedulers/scheduler-names.js";
import type { Scheduler } from "./scheduler.types.js";
import type { ResolvedConfig } from "./scheduler.base.js";
import { DomainError } from "../../../shared/errors/error-codes.js";
import { DDIM_DEFAULTS, DDIMScheduler } from "./ddim.scheduler.js";
import { DPM_SOLVER_MULTISTEP_DEFAULTS, DPMSolverMultistepScheduler } from "./dpm-solver-multistep.scheduler.js";
import {
  EULER_ANCESTRAL_DISCRETE_DEFAULTS,
  EulerAncestralDiscreteScheduler,
} from "./euler-ancestral-discrete.scheduler.js";
import { EULER_DISCRETE_DEFAULTS, EulerDiscreteScheduler } from "./euler-discrete.scheduler.js";
import { HEUN_DISCRETE_DEFAULTS, HeunDiscreteScheduler } from "./heun-discrete.scheduler.js";
import {
  KDPM2_ANCESTRAL_DISCRETE_DEFAULTS,
  KDPM2AncestralDiscreteScheduler,
} from "./kdpm2-ancestral-discrete.scheduler.js";
import { KDPM2_DISCRETE_DEFAULTS, KDPM2DiscreteScheduler } from "./kdpm2-discrete.scheduler.js";
import { LMS_DISCRETE_DEFAULTS, LMSDiscreteScheduler } from "./lms-discrete.scheduler.js";
import { PNDM_DEFAULTS, PNDMScheduler } from "./pndm.scheduler.js";

export type { ResolvedConfig } from "./scheduler.base.js";

interface SchedulerSpec {
  /** The class's __init__ keys with their defaults (what diffusers' register_to_config records). */
  defaults: Record<string, unknown>;
  create(config: ResolvedConfig): Scheduler;
}

const REGISTRY: Record<SchedulerClass, SchedulerSpec> = {
  DPMSolverMultistepScheduler: {
    defaults: DPM_SOLVER_MULTISTEP_DEFAULTS,
    create: (c) => new DPMSolverMultistepScheduler(c),
  },
  DDIMScheduler: { defaults: DDIM_DEFAULTS, create: (c) => new DDIMScheduler(c) },
  EulerDiscreteScheduler: { defaults: EULER_DISCRETE_DEFAULTS, create: (c) => new EulerDiscreteScheduler(c) },
  EulerAncestralDiscreteScheduler: {
    defaults: EULER_ANCESTRAL_DISCRETE_DEFAULTS,
    create: (c) => new EulerAncestralDiscreteScheduler(c),
  },
  PNDMScheduler: { defaults: PNDM_DEFAULTS, create: (c) => new PNDMScheduler(c) },
  LMSDiscreteScheduler: { defaults: LMS_DISCRETE_DEFAULTS, create: (c) => new LMSDiscreteScheduler(c) },
  HeunDiscreteScheduler: { defaults: HEUN_DISCRETE_DEFAULTS, create: (c) => new HeunDiscreteScheduler(c) },
  KDPM2DiscreteScheduler: { defaults: KDPM2_DISCRETE_DEFAULTS, create: (c) => new KDPM2DiscreteScheduler(c) },
  KDPM2AncestralDiscreteScheduler: {
    defaults: KDPM2_ANCESTRAL_DISCRETE_DEFAULTS,
    create: (c) => new KDPM2AncestralDiscreteScheduler(c),
  },
};

export interface SchedulerChoice {
  className: SchedulerClass;
  overrides: SchedulerOverrides;
}

function specOf(className: SchedulerClass): SchedulerSpec {
  const spec = Object.hasOwn(REGISTRY, className) ? REGISTRY[className] : undefined;
  if (!spec) throw new DomainError("invalid_argument", `unknown scheduler class ${className}`);
  return spec;
}

/**
 * The config diffusers ends up with for `className.from_config(pipe.scheduler.config, **overrides)`, given the
 * model's scheduler_config.json as loaded from disk. Includes the file's other keys (diffusers registers them
 * too), `_class_name` and `_use_default_values` (sorted); `_diffusers_version` is left out.
 */
export function resolveSchedulerConfig(choice: SchedulerChoice, modelSchedulerConfig: Record<string, unknown>): ResolvedConfig {
  const spec = specOf(choice.className);
  const pipeConfig = pipelineSchedulerConfig(modelSchedulerConfig);
  const overrides = choice.overrides as Record<string, unknown>;
  const out: ResolvedConfig = {};
  const usedDefaults: string[] = [];
  for (const [key, fallback] of Object.entries(spec.defaults)) {
    if (Object.hasOwn(overrides, key) && overrides[key] !== undefined) out[key] = overrides[key];
    else if (Object.hasOwn(pipeConfig, key)) out[key] = pipeConfig[key];
    else {
      out[key] = fallback;
      usedDefaults.push(key);
    }
  }
  for (const [key, value] of Object.entries(pipeConfig)) {
    if (!Object.hasOwn(out, key) && !key.startsWith("_")) out[key] = value;
  }
  out._class_name = choice.className;
  out._use_default_values = usedDefaults.sort();
  return out;
}

/**
 * `pipe.scheduler.config` as from_config sees it: the file's keys minus any it marks as defaults, after
 * StableDiffusionPipeline.__init__'s fix-ups of outdated files (steps_offset forced to 1, clip_sample to false).
 * Keys the file lacks need no tracking: the loaded class lists them in `_use_default_values`, which from_config
 * drops, so the chosen class falls back to its own defaults for exactly those.
 */
function pipelineSchedulerConfig(file: Record<string, unknown>): Record<string, unknown> {
  const marked = new Set(Array.isArray(file._use_default_values) ? (file._use_default_values as unknown[]) : []);
  const config: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(file)) {
    if (key !== "_use_default_values" && !marked.has(key)) config[key] = value;
  }
  if (Object.hasOwn(config, "steps_offset") && config.steps_offset !== 1) config.steps_offset = 1;
  if (config.clip_sample === true) config.clip_sample = false;
  return config;
}

/** A fresh scheduler for one request (schedulers hold per-run state; never share one between requests). */
export function createScheduler(choice: SchedulerChoice, modelSchedulerConfig: Record<string, unknown>): Scheduler {
  return specOf(choice.className).create(resolveSchedulerConfig(choice, modelSchedulerConfig));
}
