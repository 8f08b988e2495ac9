import type { GpuStatus } from "../ports/gpu-status.port.js";

/** Until a GPU tier is connected, no model is loaded. */
export const offlineGpuStatus: GpuStatus = { modelLoaded: async () => false };
