/** Test helpers: fixture paths, the manifest, running the built CLI. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Graph } from '../ir/graph.js'
import type { Tensor } from '../ir/tensor.js'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const DIGITS = path.join(ROOT, 'test/fixtures/digits')
export const MODELS = ['mlp_relu', 'cnn_bn_relu_maxpool', 'resnet8', 'cnn_gelu', 'mlp_sigmoid_tanh', 'aespa_cnn', 'pkn_cnn', 'senet_partial_relu', 'cnn_square'] as const

export interface ManifestModel {
  test_accuracy: number
  parameter_count: number
  op_type_counts: Record<string, number>
}

export const MANIFEST = JSON.parse(readFileSync(path.join(DIGITS, 'manifest.json'), 'utf8')) as { models: Record<string, ManifestModel> }

/** The CLI's state directory (certificates, known hosts) for the processes a test file starts: temporary. */
export const STATE_DIR = mkdtempSync(path.join(tmpdir(), 'pic-state-'))
/** The environment of a started process, read at each start (a test may set a variable just before). */
const env = () => ({ ...process.env, PIC_STATE_DIR: STATE_DIR })

export function digits(file: string): string {
  return path.join(DIGITS, file)
}

/** Run `pic ARGS` from the built dist/ (npm test builds first). */
export function pic(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'bin/pic.js'), ...args], { encoding: 'utf8', cwd: ROOT, timeout: 300_000, env: env() })
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

/** Background `pic` processes started by `background`, to kill when a test file ends. */
export const started: ChildProcess[] = []

/** Start `pic ARGS` in the background; resolves with the port it reports listening on (and the certificate's fingerprint it printed before). */
export function background(...args: string[]): Promise<{ child: ChildProcess; port: number; fingerprint?: string; stderr: () => string; exit: Promise<number> }> {
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/pic.js'), ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: env() })
  started.push(child)
  const exit = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)))
  return new Promise((resolve, reject) => {
    let err = ''
    const timer = setTimeout(() => reject(new Error(`no port from pic ${args[0]}: ${err}`)), 120_000)
    child.stderr!.on('data', (d) => {
      err += d
      const m = /listening on [^\s]+:(\d+)/.exec(err)
      if (m) {
        clearTimeout(timer)
        resolve({ child, port: Number(m[1]), fingerprint: /certificate sha256 ([0-9a-f]{64})/.exec(err)?.[1], stderr: () => err, exit })
      }
    })
    child.on('exit', () => reject(new Error(`pic ${args[0]} exited: ${err}`)))
  })
}

/** Run `pic ARGS` to completion without blocking the event loop (other parties may run meanwhile). */
export function picAsync(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [path.join(ROOT, 'bin/pic.js'), ...args], { cwd: ROOT, env: env() })
    let stdout = ''
    let stderr = ''
    c.stdout.on('data', (d) => (stdout += d))
    c.stderr.on('data', (d) => (stderr += d))
    c.on('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

/** The graph with the values of the constants `names` multiplied by `k` (range tests: a layer made to overflow). */
export function scaled(g: Graph, names: string[], k: number): Graph {
  return {
    ...g,
    nodes: g.nodes.map((n) => {
      if (!names.includes(n.name)) return n
      const v = (n.attrs as { value: Tensor }).value
      return { ...n, attrs: { ...n.attrs, value: { ...v, data: v.data.map((a) => a * k) } } }
    }),
  }
}
