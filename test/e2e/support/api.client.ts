// The public API as a client sees it, over real HTTP. Not a test file itself.
import { waitFor } from "./processes.js";

export interface TaskJson {
  task_id: string;
  status: "pending" | "processing" | "completed" | "failed" | "cancelled";
  result_url: string | null;
  result_urls: string[] | null;
  error_message: string | null;
  created_at: string;
  updated_at: string;
  seed: number | null;
  width: number | null;
  height: number | null;
  scheduler: string | null;
  num_images: number;
  progress: { step: number; total: number } | null;
  queue_position: number | null;
  loras: Array<{ name: string; weight: number }>;
}

const TERMINAL = new Set(["completed", "failed", "cancelled"]);

export class ApiClient {
  constructor(
    public baseUrl: string,
    private readonly key: string,
  ) {}

  async generate(body: Record<string, unknown>): Promise<string> {
    const res = await fetch(`${this.baseUrl}/api/v1/generate`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": this.key },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as { task_id: string };
    if (res.status !== 200) throw new Error(`generate answered ${res.status}: ${JSON.stringify(json)}`);
    return json.task_id;
  }

  async task(id: string): Promise<TaskJson> {
    const res = await fetch(`${this.baseUrl}/api/v1/tasks/${id}`, { headers: { "x-api-key": this.key } });
    if (res.status !== 200) throw new Error(`GET task answered ${res.status}`);
    return (await res.json()) as TaskJson;
  }

  async cancel(id: string): Promise<Response> {
    return fetch(`${this.baseUrl}/api/v1/tasks/${id}/cancel`, { method: "POST", headers: { "x-api-key": this.key } });
  }

  /** Polls the task until `until` holds (default: a terminal status). */
  waitTask(id: string, until: (t: TaskJson) => boolean = (t) => TERMINAL.has(t.status), timeoutMs = 120_000): Promise<TaskJson> {
    return waitFor(`task ${id}`, async () => {
      const t = await this.task(id);
      return until(t) ? t : undefined;
    }, timeoutMs);
  }
}
