/** Helpers of the progress tests (progress.test.ts, progress-serve.test.ts). */
import { expect } from 'vitest'

/** stdout is one JSON object and nothing else. */
export function pureJSON(stdout: string): Record<string, unknown> {
  expect(stdout.startsWith('{')).toBe(true)
  expect(stdout.endsWith('}\n')).toBe(true)
  return JSON.parse(stdout) as Record<string, unknown>
}

/** The index of the first stderr line matching `re` (fails if none). */
export function lineOf(stderr: string, re: RegExp): number {
  const i = stderr.split('\n').findIndex((l) => re.test(l))
  expect(i, `no line matching ${re} in:\n${stderr}`).toBeGreaterThanOrEqual(0)
  return i
}
