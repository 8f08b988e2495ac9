// A GpuClient that only answers ListLoras, for the suites of the LoRA catalog and the routes that use it (a
// test double isolating the edge; the end-to-end suite asks real nodes). Not a test file itself.
import { create } from "@bufbuild/protobuf";
import { ListLorasResponseSchema, LoraInfoSchema, type ListLorasResponse, type LoraInfo } from "../../../shared/gen/sd/v1/gpu_pb.js";
import type { GpuClient } from "../../../edge/gpu/gpu-client.port.js";
import { gpuCallError } from "../../../edge/gpu/gpu-client.port.js";

export type LoraInit = Partial<Omit<LoraInfo, "$typeName" | "$unknown">> & { name: string };

export function loraInfo(init: LoraInit): LoraInfo {
  return create(LoraInfoSchema, { kind: "lora", matchedModules: 5, sizeBytes: 1000, ...init });
}

export class LoraNode implements GpuClient {
  calls = 0;
  /** Refuse ListLoras as an unreachable node does. */
  down = false;
  /** Never answer (until the caller's signal aborts). */
  hang = false;

  constructor(public loraList: LoraInit[] = []) {}

  async loras(signal?: AbortSignal): Promise<ListLorasResponse> {
    this.calls++;
    if (this.down) throw gpuCallError(14, "gpu node: connect ECONNREFUSED", null);
    if (this.hang) {
      await new Promise<never>((_, reject) => signal?.addEventListener("abort", () => reject(gpuCallError(4, "gpu node: deadline exceeded", null)), { once: true }));
    }
    return create(ListLorasResponseSchema, { loras: this.loraList.map(loraInfo) });
  }

  generate(): AsyncIterable<never> {
    throw new Error("not used");
  }
  cancel(): never {
    throw new Error("not used");
  }
  status(): never {
    throw new Error("not used");
  }
  close(): void {}
}
