// createScheduler / resolveSchedulerConfig: diffusers' from_config(pipe.scheduler.config) resolution, checked
// against the pipeline goldens' recorded configs and schedules (diffusers 0.33.1 on the tiny model).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createScheduler, resolveSchedulerConfig } from "../../../../gpu-node/pipeline/schedulers/index.js";
import { resolveScheduler, type SchedulerClass } from "../../../../shared/schedulers/scheduler-names.js";

const repoFile = (path: string) => readFileSync(fileURLToPath(new URL(`../../../../${path}`, import.meta.url)), "utf8");
const modelConfig = JSON.parse(repoFile("models/tiny-sd/scheduler/scheduler_config.json")) as Record<string, unknown>;
const golden = (name: string) =>
  JSON.parse(repoFile(`test/gpu-node/pipeline/fixtures/goldens/${name}/params.json`)) as {
    scheduler_class: SchedulerClass;
    scheduler_config: Record<string, unknown>;
    num_inference_steps: number;
    init_noise_sigma: number;
    scheduler_timesteps: number[];
    scheduler_sigmas: number[] | null;
  };

describe.each(["txt2img_euler", "txt2img_ddim"])("golden %s", (name) => {
  const g = golden(name);
  const choice = { className: g.scheduler_class, overrides: {} };

  it("resolves the same config as diffusers' from_config", () => {
    const expected = { ...g.scheduler_config, _use_default_values: [...(g.scheduler_config._use_default_values as string[])].sort() };
    expect(resolveSchedulerConfig(choice, modelConfig)).toEqual(expected);
  });

  it("gives diffusers' timesteps, sigmas and init_noise_sigma", () => {
    const s = createScheduler(choice, modelConfig);
    s.setTimesteps(g.num_inference_steps);
    expect(Array.from(s.timesteps)).toEqual(g.scheduler_timesteps);
    expect(s.sigmas === null ? null : Array.from(s.sigmas)).toEqual(g.scheduler_sigmas);
    expect(s.initNoiseSigma).toBe(g.init_noise_sigma);
  });
});

describe("from_config resolution", () => {
  const config = (className: SchedulerClass, file: Record<string, unknown> = modelConfig, overrides = {}) =>
    resolveSchedulerConfig({ className, overrides }, file);

  it("keys missing from SD's file take the chosen class's defaults: DDIM leading, Euler linspace", () => {
    expect(config("DDIMScheduler").timestep_spacing).toBe("leading");
    expect(config("EulerDiscreteScheduler").timestep_spacing).toBe("linspace");
    expect(config("DDIMScheduler")._use_default_values).toContain("timestep_spacing");
  });

  it("keys present in the file carry over, also to a class whose default differs", () => {
    const file = { ...modelConfig, timestep_spacing: "trailing", prediction_type: "v_prediction" };
    expect(config("EulerDiscreteScheduler", file)).toMatchObject({ timestep_spacing: "trailing", prediction_type: "v_prediction" });
    expect(config("DDIMScheduler", file)._use_default_values).not.toContain("timestep_spacing");
    // set_alpha_to_one: DDIM's default is true, SD's file says false.
    expect(config("DDIMScheduler").set_alpha_to_one).toBe(false);
  });

  it("drops keys a saved config marks as defaults (_use_default_values), as from_config does", () => {
    const saved = { ...modelConfig, timestep_spacing: "leading", _use_default_values: ["timestep_spacing"] };
    expect(config("EulerDiscreteScheduler", saved).timestep_spacing).toBe("linspace");
  });

  it("applies StableDiffusionPipeline's fix-ups of outdated files: steps_offset 1, clip_sample false", () => {
    const old = { ...modelConfig, steps_offset: 0, clip_sample: true };
    expect(config("DDIMScheduler", old)).toMatchObject({ steps_offset: 1, clip_sample: false });
    const s = createScheduler({ className: "DDIMScheduler", overrides: {} }, old);
    s.setTimesteps(50);
    expect(s.timesteps[0]).toBe(981);
    expect(s.timesteps[49]).toBe(1);
  });

  it("alias overrides win over the file and unknown-to-the-class overrides are ignored", () => {
    const euler = resolveScheduler("Euler")!;
    expect(config(euler.className, { ...modelConfig, use_karras_sigmas: true }, { use_karras_sigmas: false }).use_karras_sigmas).toBe(false);
    const ddim = config("DDIMScheduler", modelConfig, { use_karras_sigmas: true });
    expect(ddim).not.toHaveProperty("use_karras_sigmas");
  });

  it("keeps the file's other keys (diffusers registers them) and names the chosen class", () => {
    const c = config("EulerDiscreteScheduler");
    expect(c).toMatchObject({ _class_name: "EulerDiscreteScheduler", skip_prk_steps: true, set_alpha_to_one: false });
    expect(c).not.toHaveProperty("_diffusers_version");
  });

  it("returns a fresh instance per call", () => {
    const choice = { className: "EulerDiscreteScheduler" as const, overrides: {} };
    const a = createScheduler(choice, modelConfig);
    const b = createScheduler(choice, modelConfig);
    a.setTimesteps(8);
    b.setTimesteps(3);
    expect(a.timesteps.length).toBe(8);
    expect(b.timesteps.length).toBe(3);
  });

  it("rejects a config value of the wrong type", () => {
    expect(() => createScheduler({ className: "EulerDiscreteScheduler", overrides: {} }, { ...modelConfig, beta_start: "0.1" })).toThrow(
      /beta_start/,
    );
  });

  it("refuses, when it is created, configs this port does not implement (the model setup is at fault: internal)", () => {
    const make = (className: SchedulerClass, file: Record<string, unknown>) => () =>
      createScheduler({ className, overrides: {} }, { ...modelConfig, ...file });
    expect(make("DDIMScheduler", { thresholding: true })).toThrow(/thresholding/);
    expect(make("EulerDiscreteScheduler", { prediction_type: "flow_prediction" })).toThrow(/prediction_type/);
    expect(make("EulerDiscreteScheduler", { use_beta_sigmas: true })).toThrow(/use_beta_sigmas/);
    expect(make("KDPM2DiscreteScheduler", { prediction_type: "sample" })).toThrow(/prediction_type/);
    expect(make("DPMSolverMultistepScheduler", { algorithm_type: "unipc" })).toThrow(/algorithm_type/);
    expect(make("DPMSolverMultistepScheduler", { algorithm_type: "dpmsolver" })).toThrow(/final_sigmas_type/);
    try {
      make("DDIMScheduler", { thresholding: true })();
    } catch (err) {
      expect(err).toMatchObject({ code: "internal" });
    }
  });

  it("maps retired DPM-Solver settings as diffusers does (deis → dpmsolver++, bh2 → midpoint)", () => {
    const s = createScheduler({ className: "DPMSolverMultistepScheduler", overrides: {} }, { ...modelConfig, algorithm_type: "deis", solver_type: "bh2" });
    expect((s as unknown as { config: Record<string, unknown> }).config).toMatchObject({ algorithm_type: "dpmsolver++", solver_type: "midpoint" });
  });

  it("rejects more inference steps than training steps as invalid_argument", () => {
    const s = createScheduler({ className: "DDIMScheduler", overrides: {} }, modelConfig);
    expect(() => s.setTimesteps(1001)).toThrow(expect.objectContaining({ code: "invalid_argument" }));
    expect(() => s.setTimesteps(0)).toThrow(expect.objectContaining({ code: "invalid_argument" }));
  });

  it("names its own class when DDIM or PNDM refuse a timestep_spacing (they share the integer spacing)", () => {
    for (const className of ["DDIMScheduler", "PNDMScheduler"] as const) {
      const s = createScheduler({ className, overrides: {} }, { ...modelConfig, timestep_spacing: "uniform" });
      expect(() => s.setTimesteps(10)).toThrow(new RegExp(`^${className}: timestep_spacing "uniform"`));
    }
  });
});
