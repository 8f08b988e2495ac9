import { parse as parseYaml } from "yaml";
import { ConfigError, parseConfig, type Config, type ConfigEnv } from "./config.schema.js";

/** Parses config.yaml text (may be empty) and validates it with the env overrides applied. */
export function parseConfigYaml(text: string, env: ConfigEnv = {}, source = "config.yaml"): Config {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${source}: not valid YAML: ${(err as Error).message}`);
  }
  try {
    return parseConfig(raw, env);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${source}: ${err.message}`);
    throw err;
  }
}
