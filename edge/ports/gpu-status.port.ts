/** What the edge knows about the GPU tier, for GET /health's model_loaded. */
export interface GpuStatus {
  modelLoaded(): Promise<boolean>;
}
