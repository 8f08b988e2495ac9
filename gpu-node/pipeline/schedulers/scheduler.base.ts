// What every scheduler class shares beyond the noise schedule: reading its config and failing early on values it
// cannot run. The two families build on it: sigma-scheduler.base.ts (Euler, Heun, LMS, KDPM2, DPM++) and
// alpha-scheduler.base.ts (DDIM, PNDM).
import { DomainError } from "../../../shared/errors/error-codes.js";

/** A scheduler's config after from_config resolution: its own keys plus the model file's other keys. */
export type ResolvedConfig = Record<string, unknown>;

/**
 * Reads a class's own keys from the resolved config: a value must have its default's JSON type (null defaults
 * accept null, a number, a string or an array). Keys the class does not own are not read here; the classes that
 * need them (a `sigma_min` carried over from another class, which diffusers' `hasattr` sees) use optionalNumber.
 */
export function readConfig<T extends Record<string, unknown>>(className: string, defaults: T, resolved: ResolvedConfig): T {
  const out: Record<string, unknown> = {};
  for (const [key, fallback] of Object.entries(defaults)) {
    const value = Object.hasOwn(resolved, key) ? resolved[key] : fallback;
    if (fallback !== null && value !== null && typeof value !== typeof fallback) {
      throw configError(className, `${key} must be a ${typeof fallback}, got ${JSON.stringify(value)}`);
    }
    if (fallback === null && value !== null && typeof value !== "number" && typeof value !== "string" && !Array.isArray(value)) {
      throw configError(className, `${key} has an unexpected value ${JSON.stringify(value)}`);
    }
    out[key] = value;
  }
  return out as T;
}

/** A config value diffusers would reject (or one this port does not implement): the model's setup is at fault. */
export function configError(className: string, message: string): DomainError {
  return new DomainError("internal", `${className}: ${message}`);
}

/** Fails at construction (not mid-generation) for a prediction_type the class does not handle. */
export function checkPredictionType(className: string, type: string, allowed: readonly string[]): void {
  if (!allowed.includes(type)) {
    throw configError(className, `prediction_type "${type}" is not supported; expected one of ${allowed.join(", ")}`);
  }
}

/** A number the resolved config carries under `key` (its own or another class's), else null. */
export function optionalNumber(resolved: ResolvedConfig, key: string): number | null {
  const value = resolved[key];
  return typeof value === "number" ? value : null;
}

export function checkStepCount(className: string, steps: number, numTrain: number): void {
  if (!Number.isInteger(steps) || steps < 1) {
    throw new DomainError("invalid_argument", `${className}: num_inference_steps must be a positive integer, got ${steps}`);
  }
  if (steps > numTrain) {
    throw new DomainError(
      "invalid_argument",
      `${className}: num_inference_steps (${steps}) cannot be larger than num_train_timesteps (${numTrain})`,
    );
  }
}

export function checkSameLength(a: Float32Array, b: Float32Array): void {
  if (a.length !== b.length) throw new DomainError("internal", `tensor sizes differ: ${a.length} vs ${b.length}`);
}
