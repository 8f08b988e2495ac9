import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../../shared/config/config.schema.js";
import { parseConfigYaml } from "../../../shared/config/config.yaml.js";
import { loadNodeConfig } from "../../../shared/node/config.load.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "config-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("loadNodeConfig", () => {
  it("reads the file named by SD_CONFIG, then the environment overrides", () => {
    const path = join(dir, "custom.yaml");
    writeFileSync(path, "api:\n  keys: file-a, file-b\n  key_header: X-Token\nserver:\n  port: 9000\n");
    expect(loadNodeConfig({ SD_CONFIG: path })).toMatchObject({ api: { keys: ["file-a", "file-b"], key_header: "X-Token" }, server: { port: 9000 } });
    expect(loadNodeConfig({ SD_CONFIG: path, PORT: "9100", SD_API_KEYS: "env-key" })).toMatchObject({ api: { keys: ["env-key"] }, server: { port: 9100 } });
  });

  it("refuses a missing SD_CONFIG file by name", () => {
    expect(() => loadNodeConfig({ SD_CONFIG: join(dir, "nope.yaml") })).toThrow(ConfigError);
    expect(() => loadNodeConfig({ SD_CONFIG: join(dir, "nope.yaml") })).toThrow(/SD_CONFIG: no config file/);
  });

  it("names the file and the key of a bad value", () => {
    const path = join(dir, "bad.yaml");
    writeFileSync(path, "api:\n  rate_limit:\n    refill_per_second: -2\n");
    expect(() => loadNodeConfig({ SD_CONFIG: path })).toThrow(/bad\.yaml: invalid config:\n {2}api\.rate_limit\.refill_per_second:/);
  });
});

describe("the repository's config.yaml", () => {
  it("is valid and holds the development defaults", () => {
    const config = parseConfigYaml(readFileSync(new URL("../../../config.yaml", import.meta.url), "utf8"));
    expect(config.api.keys).toContain("dev-key-1");
    expect(config.server.port).toBe(8000);
    expect(config.callback.allow_private_targets).toBe(true);
    expect(config.minio.endpoint).toBe("127.0.0.1:9000");
    expect(config.gpu_nodes[0].grpc).toBe("127.0.0.1:50051");
    expect(config.health_check.no_auth).toBe(true);
    // It spells out what the schema would default to anyway, apart from the development settings.
    const defaults = parseConfig({});
    expect(config.api.limits).toEqual(defaults.api.limits);
    expect(config.task_db).toEqual(defaults.task_db);
  });
});
