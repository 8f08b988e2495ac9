import { describe, expect, it } from "vitest";
import { ConfigError, applyEnvOverrides, parseConfig } from "../../../shared/config/config.schema.js";
import { parseConfigYaml } from "../../../shared/config/config.yaml.js";

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("config schema", () => {
  it("gives every key a default", () => {
    const config = parseConfig({});
    expect(config.server).toEqual({ host: "127.0.0.1", port: 8000 });
    expect(config.api).toMatchObject({ keys: [], key_header: "X-API-Key", cors_origins: ["*"], rate_limit: { enabled: false } });
    expect(config.api.limits).toEqual({ max_pixels: 1024 * 1024, max_init_image_bytes: 10 * 1024 * 1024 });
    expect(config.health_check.no_auth).toBe(true);
    expect(config.task_db.path).toBe("data/tasks.db");
    expect(config.database.url).toBeNull();
  });

  it("takes api.keys as a list or as one comma-separated string (as the original did)", () => {
    expect(parseConfig({ api: { keys: ["a", "b"] } }).api.keys).toEqual(["a", "b"]);
    expect(parseConfig({ api: { keys: " a, b ,,c " } }).api.keys).toEqual(["a", "b", "c"]);
  });

  it.each([
    [{ server: { port: 70000 } }, "server.port"],
    [{ server: { port: "http" } }, "server.port"],
    [{ api: { keys: 5 } }, "api.keys"],
    [{ api: { rate_limit: { capacity: 0 } } }, "api.rate_limit.capacity"],
    [{ api: { limits: { max_pixels: -1 } } }, "api.limits.max_pixels"],
    [{ health_check: { no_auth: "sometimes" } }, "health_check.no_auth"],
    [{ device: "tpu" }, "device"],
    [{ callback: { retry_times: -1 } }, "callback.retry_times"],
    [{ minio: { bucket: "x" } }, "minio.bucket"],
    [{ log_level: "loud" }, "log_level"],
  ])("names the offending key: %j", (raw, key) => {
    expect(errorOf(() => parseConfig(raw))).toContain(`${key}:`);
  });

  it("refuses a top level that is not a mapping, and YAML that does not parse", () => {
    expect(errorOf(() => parseConfig(["a"]))).toMatch(/top level/);
    expect(errorOf(() => parseConfigYaml("api: [unclosed", {}, "my.yaml"))).toMatch(/^my\.yaml: not valid YAML/);
    expect(errorOf(() => parseConfigYaml("server:\n  port: -5\n", {}, "my.yaml"))).toMatch(/^my\.yaml: invalid config:\n {2}server\.port:/);
  });

  it("applies the environment overrides over the file", () => {
    const env = { PORT: "9123", SD_API_KEYS: "env-1,env-2", DATABASE_URL: "libsql://db.example.turso.io", SD_MODEL_PATH: "/models/sd15", HOST: "0.0.0.0" };
    const config = parseConfig({ server: { port: 8000 }, api: { keys: ["file-key"] }, sd_model: { path: "models/tiny-sd" } }, env);
    expect(config.server).toEqual({ host: "0.0.0.0", port: 9123 });
    expect(config.api.keys).toEqual(["env-1", "env-2"]);
    expect(config.database.url).toBe("libsql://db.example.turso.io");
    expect(config.sd_model.path).toBe("/models/sd15");
  });

  it("names the environment variable's key when its value is bad", () => {
    expect(errorOf(() => parseConfig({}, { PORT: "eighty" }))).toContain("server.port:");
  });

  it("ignores empty environment variables", () => {
    expect(parseConfig({ api: { keys: ["k"] } }, { SD_API_KEYS: "", PORT: "" }).api.keys).toEqual(["k"]);
    expect(applyEnvOverrides({ a: 1 }, {})).toEqual({ a: 1 });
  });
});
