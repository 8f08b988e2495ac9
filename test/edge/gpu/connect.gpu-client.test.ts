import { build } from "esbuild";
import { describe, expect, it } from "vitest";
import { createConnectGpuClient, workerSafeFetch } from "../../../edge/gpu/connect.gpu-client.js";

describe("workerSafeFetch", () => {
  it("drops redirect, mode and credentials (Workers' fetch throws on them) and keeps the rest", async () => {
    const seen: Array<RequestInit | undefined> = [];
    const base = (async (_input: string | URL | Request, init?: RequestInit) => {
      seen.push(init);
      return new Response("ok");
    }) as typeof fetch;
    const signal = new AbortController().signal;
    await workerSafeFetch(base)("http://node/x", {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: "b",
      redirect: "error",
      mode: "cors",
      credentials: "same-origin",
      signal,
    });
    expect(seen[0]).toEqual({ method: "POST", headers: { "content-type": "application/grpc-web+proto" }, body: "b", signal });
    await workerSafeFetch(base)("http://node/y");
    expect(seen[1]).toBeUndefined();
  });
});

describe("createConnectGpuClient", () => {
  it("sends gRPC-web with the tier secret through the wrapped fetch, without the fields Workers refuse", async () => {
    const requests: Request[] = [];
    const client = createConnectGpuClient({
      baseUrl: "http://gpu.internal:50052",
      tierSecret: "s3cret",
      fetch: async (input, init) => {
        const request = new Request(input, init);
        expect(init).not.toHaveProperty("mode");
        expect(init).not.toHaveProperty("credentials");
        expect(init).not.toHaveProperty("redirect");
        requests.push(request);
        throw new TypeError("fetch failed");
      },
    });
    // An unreachable node is UNAVAILABLE (try another), as grpc-js reports it.
    await expect(client.status()).rejects.toMatchObject({ name: "GpuCallError", code: "unavailable", grpcCode: 14, retryable: true });
    expect(requests[0].url).toBe("http://gpu.internal:50052/sd.v1.GpuNode/GetStatus");
    expect(requests[0].headers.get("content-type")).toBe("application/grpc-web+proto");
    expect(requests[0].headers.get("x-tier-secret")).toBe("s3cret");
  });

  it("bundles for Workers: no node: modules, no runtime code generation", async () => {
    const result = await build({
      entryPoints: [new URL("../../../edge/gpu/connect.gpu-client.ts", import.meta.url).pathname],
      bundle: true,
      write: false,
      // "neutral" resolves no Node built-ins: any node: import fails the build.
      platform: "neutral",
      format: "esm",
      mainFields: ["module", "main"],
      conditions: ["workerd", "worker", "browser"],
      metafile: true,
      logLevel: "silent",
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.some((path) => path.startsWith("node:"))).toBe(false);
    expect(inputs.some((path) => path.includes("protobufjs"))).toBe(false);
    const code = result.outputFiles[0].text;
    expect(code).not.toMatch(/new Function\(|\beval\(/);
  });
});
