import { lookup } from "node:dns/promises";
import type { HostResolver, ResolvedAddress } from "../webhooks/ssrf.guard.js";

/** The OS resolver (getaddrinfo: /etc/hosts, then DNS), every address of both families. */
export const dnsHostResolver: HostResolver = {
  async resolve(hostname: string): Promise<ResolvedAddress[]> {
    const found = await lookup(hostname, { all: true, verbatim: true });
    return found.map(({ address, family }) => ({ address, family: family === 6 ? 6 : 4 }));
  },
};
