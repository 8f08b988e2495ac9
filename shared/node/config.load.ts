// shared/node/ holds the Node-only code both tiers' Node processes use; the rest of shared/ runs anywhere.
// Node-only: reads the config file named by SD_CONFIG (default ./config.yaml). Each Node entry point
// calls this once; nothing else reads process.env.
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseConfigYaml } from "../config/config.yaml.js";
import { ConfigError, type Config, type ConfigEnv } from "../config/config.schema.js";

export function loadNodeConfig(env: ConfigEnv = process.env): Config {
  const path = resolve(env.SD_CONFIG ?? "config.yaml");
  // A missing default file means "all defaults"; a missing file the user named is an error.
  if (!existsSync(path)) {
    if (env.SD_CONFIG) throw new ConfigError(`SD_CONFIG: no config file at ${path}`);
    return parseConfigYaml("", env, path);
  }
  const text = readFileSync(path, "utf8");
  return parseConfigYaml(text, env, path);
}

/**
 * For entry points: the config, or the process exits with the ConfigError's message (which names the key or the
 * file) and no stack trace. Other errors are thrown as they are.
 */
export function loadNodeConfigOrExit(env: ConfigEnv = process.env): Config {
  try {
    return loadNodeConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    process.exit(1);
  }
}
