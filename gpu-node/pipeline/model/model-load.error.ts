/** A model directory that cannot serve: missing or broken files, unsupported exports. Fails start-up. */
export class ModelLoadError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ModelLoadError";
  }
}
