// Runner hooks that make a host's worker die on the job's first progress report: the job is then running, so the
// test sees a crash mid-generation rather than before or after it. The host needs faultInjection.
import type { PipelineHost } from "../../gpu-node/pipeline/pipeline.host.js";
import type { RunnerHooks } from "../../gpu-node/pipeline/pipeline.types.js";

export function crashOnFirstStep(host: PipelineHost, how: "exit" | "throw"): RunnerHooks {
  let crashed = false;
  return {
    onProgress: () => {
      if (crashed) return;
      crashed = true;
      host.injectCrash(how);
    },
  };
}
