// The scheduler a request without one gets: config.default_scheduler, else the class the model ships in
// scheduler/scheduler_config.json (as diffusers' pipeline would load it), else model_index.json's entry.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, type Config } from "../../shared/config/config.schema.js";
import { resolveScheduler, SCHEDULER_CLASSES, type ResolvedScheduler } from "../../shared/schedulers/scheduler-names.js";

function readJson(path: string): Record<string, unknown> | null {
  if (!existsSync(path)) return null;
  return JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
}

function modelSchedulerClass(modelPath: string): string | null {
  const schedulerConfig = readJson(join(modelPath, "scheduler", "scheduler_config.json"));
  if (typeof schedulerConfig?._class_name === "string") return schedulerConfig._class_name;
  const index = readJson(join(modelPath, "model_index.json"));
  const entry = index?.scheduler;
  return Array.isArray(entry) && typeof entry[1] === "string" ? entry[1] : null;
}

export function defaultScheduler(config: Pick<Config, "default_scheduler" | "sd_model">): ResolvedScheduler {
  if (config.default_scheduler !== null) {
    const found = resolveScheduler(config.default_scheduler);
    if (!found) throw new ConfigError(`default_scheduler: unknown scheduler "${config.default_scheduler}"`);
    return found;
  }
  const className = modelSchedulerClass(config.sd_model.path);
  const found = className ? resolveScheduler(className) : null;
  if (!found) {
    throw new ConfigError(
      `default_scheduler: the model at ${config.sd_model.path} names scheduler ${className ?? "(none)"}, which is not one of ` +
        `${SCHEDULER_CLASSES.join(", ")}; set default_scheduler`,
    );
  }
  return found;
}
