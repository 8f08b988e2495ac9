/** One adapter as the GPU nodes list it (ListLoras). */
export interface LoraListing {
  name: string;
  kind: string;
  triggerWords: string[];
  /** Set for a start-up adapter: the weight applied to every task. */
  startupWeight: number | null;
  matchedModules: number;
  unmatchedKeys: number;
  unmatchedKeyExamples: string[];
  unsupportedKeys: number;
  sizeBytes: number;
  /** Why it cannot be used; null when it can. */
  error: string | null;
}

export interface LoraCatalogSnapshot {
  nodesTotal: number;
  /** 0: no node could be asked; nothing is known about the adapters. */
  nodesAnswered: number;
  /** The union over the nodes that answered, one entry per name, sorted by name. */
  loras: LoraListing[];
}

/** What the edge knows about the adapters requests may name (GET /api/v1/loras, the check of `loras`). */
export interface LoraCatalog {
  snapshot(): Promise<LoraCatalogSnapshot>;
}
