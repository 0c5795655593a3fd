/** Test helpers: fixture paths, the manifest, running the built CLI. */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const DIGITS = path.join(ROOT, 'test/fixtures/digits')
export const MODELS = ['mlp_relu', 'cnn_bn_relu_maxpool', 'resnet8', 'cnn_gelu', 'mlp_sigmoid_tanh', 'aespa_cnn', 'pkn_cnn', 'senet_partial_relu', 'cnn_square'] as const

export interface ManifestModel {
  test_accuracy: number
  parameter_count: number
  op_type_counts: Record<string, number>
}

export const MANIFEST = JSON.parse(readFileSync(path.join(DIGITS, 'manifest.json'), 'utf8')) as { models: Record<string, ManifestModel> }

export function digits(file: string): string {
  return path.join(DIGITS, file)
}

/** Run `pic ARGS` from the built dist/ (npm test builds first). */
export function pic(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/pic.js'), ...args], { encoding: 'utf8', cwd: ROOT, timeout: 300_000 })
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

/** A seeded xorshift32 stream of unsigned 32-bit integers (the same sequence everywhere a test uses it). */
export function xorshift32(seed: number): () => number {
  let s = seed
  return () => {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    return s >>> 0
  }
}
