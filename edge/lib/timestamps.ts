/**
 * ISO 8601 in UTC without a zone suffix or fraction ("2024-01-01T12:00:00"), as the original service wrote
 * its timestamps and as the spec shows them. Clients read them as UTC.
 */
export function isoUtcNaive(date: Date): string {
  return date.toISOString().slice(0, 19);
}
