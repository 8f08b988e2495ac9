// The adapters a gpu-node knows: every *.safetensors in `lora.models_dir` (name = file stem) and the start-up
// adapters of `lora.models` / `lora.models_list` (applied to every request, as the original service did).
// Each is checked against the model once at start-up, so GET /api/v1/loras can say how many keys match nothing.
import { readdir, stat } from "node:fs/promises";
import { basename, extname, isAbsolute, join, resolve } from "node:path";
import type { Config } from "../../shared/config/config.schema.js";
import { DomainError } from "../../shared/errors/error-codes.js";
import type { LoraRequest } from "../pipeline/pipeline.types.js";
import { describeAdapter, openAdapter } from "./adapter.js";
import type { AdapterDescription, AdapterKind, LoraAdapter } from "./adapter.js";
import { matchAdapter, readModuleMap } from "./lora-merge.js";
import { loraRequestProblem } from "./lora-request.check.js";
import type { ModelComponentName } from "./lora-merge.js";
import type { ModuleMap } from "./module-map.js";
import { readSafetensorsFile, readSafetensorsHeader } from "./safetensors.reader.js";

export type LoraConfig = Config["lora"];

export interface LoraInfo {
  name: string;
  path: string;
  sizeBytes: number;
  /** What the file holds: lora, loha, both, or nothing usable. */
  kind: AdapterKind | "mixed" | "none";
  /** Modules that land on a weight of the UNet / text encoder. */
  matchedModules: number;
  /** Module keys that match no weight of the model (e.g. SDXL's lora_te2_ on SD 1.5). */
  unmatchedKeys: string[];
  /** Keys not applied, with why: other algorithms (LoKr, DoRA, …), weights shared between nodes. */
  unsupportedKeys: { key: string; reason: string }[];
  triggerWords: string[];
  /** Weight applied to every request (lora.models / models_list); null for per-request adapters. */
  startupWeight: number | null;
  /** Why the adapter cannot be used (malformed file, shapes of another base model); null when it can. */
  error: string | null;
}

export interface ResolvedLora {
  name: string;
  path: string;
  weight: number;
  triggerWords: string[];
}

export class LoraRegistryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LoraRegistryError";
  }
}

const COMPONENTS: ModelComponentName[] = ["unet", "text_encoder"];

interface StartupEntry {
  configKey: string;
  path: string;
  weight: number;
  triggerWords: string[];
}

export class LoraRegistry {
  private constructor(private readonly entries: Map<string, LoraInfo>) {}

  /** No adapters (nothing configured): every request runs the base model; named adapters are unknown. */
  static empty(): LoraRegistry {
    return new LoraRegistry(new Map());
  }

  /** Whether the config names any adapter source (loading reads the model's graphs, so skip it otherwise). */
  static configured(config: LoraConfig): boolean {
    return config.models_dir !== null || config.models.length > 0 || config.models_list.length > 0;
  }

  /**
   * Scans the directory and checks every adapter against the model at `modelDir` (its unet/ and text_encoder/).
   * A broken start-up adapter stops start-up; a broken file in the directory is listed with its error.
   * Relative `lora.models` paths resolve against `baseDir`; `models_list` paths against `models_dir`.
   */
  static async load(config: LoraConfig, options: { modelDir: string; baseDir?: string }): Promise<LoraRegistry> {
    const baseDir = options.baseDir ?? process.cwd();
    const maps = new Map<ModelComponentName, ModuleMap>();
    for (const component of COMPONENTS) maps.set(component, await readModuleMap(join(options.modelDir, component)));

    const entries = new Map<string, LoraInfo>();
    const modelsDir = config.models_dir === null ? null : resolve(baseDir, config.models_dir);
    if (modelsDir !== null) {
      let names: string[];
      try {
        names = await readdir(modelsDir);
      } catch (err) {
        throw new LoraRegistryError(`lora.models_dir: cannot read ${modelsDir} (${(err as Error).message})`);
      }
      for (const file of names.sort()) {
        if (extname(file).toLowerCase() !== ".safetensors") continue;
        const path = join(modelsDir, file);
        if (!(await stat(path)).isFile()) continue;
        const info = await inspect(path, maps);
        entries.set(info.name, info);
      }
    }

    const startup: StartupEntry[] = [
      ...config.models.map((m, i) => ({ configKey: `lora.models[${i}].path`, path: resolve(baseDir, m.path), weight: m.weight, triggerWords: m.trigger_words })),
      ...config.models_list.map((m, i) => {
        if (modelsDir === null && !isAbsolute(m.path)) {
          throw new LoraRegistryError(`lora.models_list[${i}].path: "${m.path}" is relative but lora.models_dir is not set`);
        }
        return { configKey: `lora.models_list[${i}].path`, path: resolve(modelsDir ?? baseDir, m.path), weight: m.weight, triggerWords: m.trigger_words };
      }),
    ];
    for (const s of startup) {
      const path = await existing(s);
      const name = stem(path);
      const known = entries.get(name);
      if (known && known.path !== path) {
        throw new LoraRegistryError(`${s.configKey}: adapter name "${name}" is already taken by ${known.path}`);
      }
      if (known?.startupWeight != null) throw new LoraRegistryError(`${s.configKey}: adapter "${name}" is listed twice`);
      const info = known ?? (await inspect(path, maps));
      if (info.error) throw new LoraRegistryError(`${s.configKey}: ${info.error}`);
      entries.set(name, { ...info, startupWeight: s.weight, triggerWords: s.triggerWords });
    }
    return new LoraRegistry(entries);
  }

  /** Every known adapter, by name. */
  list(): LoraInfo[] {
    return [...this.entries.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): LoraInfo | undefined {
    return this.entries.get(name);
  }

  /** The adapters applied to every request. */
  startup(): ResolvedLora[] {
    return this.list()
      .filter((e) => e.startupWeight !== null)
      .map((e) => ({ name: e.name, path: e.path, weight: e.startupWeight!, triggerWords: e.triggerWords }));
  }

  /**
   * The adapter set for one request: the start-up adapters plus the requested ones. A requested name that is
   * also a start-up adapter sets its weight for this request. Unknown or unusable names → invalid_argument.
   */
  forRequest(requests: readonly LoraRequest[]): ResolvedLora[] {
    const problem = loraRequestProblem(requests, this.entries);
    if (problem) throw new DomainError("invalid_argument", problem);
    const set = new Map(this.startup().map((s) => [s.name, s]));
    for (const r of requests) {
      const info = this.entries.get(r.name)!;
      set.set(r.name, { name: info.name, path: info.path, weight: r.weight, triggerWords: info.triggerWords });
    }
    return [...set.values()];
  }

  /** Reads and parses an adapter's tensors (for a merge). */
  async open(name: string): Promise<LoraAdapter> {
    const info = this.entries.get(name);
    if (!info) throw new DomainError("invalid_argument", loraRequestProblem([{ name, weight: 1 }], this.entries)!);
    return openAdapter(name, await readSafetensorsFile(info.path));
  }
}

/** The original service's habit: trigger words in front of the prompt, comma-separated. */
export function withTriggerWords(prompt: string, set: readonly ResolvedLora[]): string {
  const words = set.filter((s) => s.weight !== 0).flatMap((s) => s.triggerWords);
  if (words.length === 0) return prompt;
  return prompt.length > 0 ? `${words.join(", ")}, ${prompt}` : words.join(", ");
}

function stem(path: string): string {
  return basename(path, extname(path));
}

async function existing(s: StartupEntry): Promise<string> {
  for (const candidate of [s.path, `${s.path}.safetensors`]) {
    try {
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // try the next spelling
    }
  }
  throw new LoraRegistryError(`${s.configKey}: no adapter file at ${s.path}`);
}

async function inspect(path: string, maps: Map<ModelComponentName, ModuleMap>): Promise<LoraInfo> {
  const info: LoraInfo = {
    name: stem(path),
    path,
    sizeBytes: (await stat(path)).size,
    kind: "none",
    matchedModules: 0,
    unmatchedKeys: [],
    unsupportedKeys: [],
    triggerWords: [],
    startupWeight: null,
    error: null,
  };
  let description: AdapterDescription;
  try {
    const { entries } = await readSafetensorsHeader(path);
    description = describeAdapter(entries, path);
  } catch (err) {
    return { ...info, error: (err as Error).message };
  }
  const kinds = new Set(description.modules.map((m) => m.kind));
  info.kind = kinds.size === 0 ? "none" : kinds.size > 1 ? "mixed" : [...kinds][0];
  info.unsupportedKeys = description.unsupported;
  // Keys of components this model has no weights for (lora_te2_ on SD 1.x) match nothing.
  info.unmatchedKeys = description.modules.filter((m) => !COMPONENTS.includes(m.component as ModelComponentName)).map((m) => m.key);
  try {
    for (const component of COMPONENTS) {
      const { match } = matchAdapter(info.name, description, maps.get(component)!, component);
      info.matchedModules += match.applied;
      info.unmatchedKeys.push(...match.unmatched);
      info.unsupportedKeys.push(...match.skipped);
    }
  } catch (err) {
    info.error = (err as Error).message;
  }
  if (!info.error && info.matchedModules === 0) info.error = "no module of this adapter matches a weight of the model";
  return info;
}
