/**
 * What every command shares: the command type, option parsing with node:util's parseArgs, the
 * compile step (import, pipeline, trace), progress on stderr, and --json output.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import type { Backend } from '../backends/backend.js'
import type { Graph } from '../ir/graph.js'
import type { Accelerator } from '../ir/interpret.js'
import { printGraph } from '../ir/print.js'
import type { Tensor } from '../ir/tensor.js'
import { parseApprox } from '../passes/approximate.js'
import { DEFAULT_NORM, DEFAULT_SOFTMAX, parseNormSpec, parseSoftmaxSpec } from '../passes/approximate-normalizations.js'
import type { Pass, PassContext } from '../passes/pass.js'
import { compileGraph, type CompileOptions } from './api.js'
import { PicError } from './errors.js'
import { readFiniteNpy } from './npy.js'
import { ortAccelerator } from './ort.js'

export type OptionSpec = NonNullable<ParseArgsConfig['options']>[string] & { help: string; arg?: string }

export interface Command {
  name: string
  summary: string
  usage: string
  options: Record<string, OptionSpec>
  run(args: ParsedArgs): Promise<number | void> | number | void
}

export interface ParsedArgs {
  positionals: string[]
  values: Record<string, string | boolean | string[] | undefined>
}

/** Options most commands accept. */
const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  json: { type: 'boolean', help: 'print exactly one JSON object on stdout' },
  debug: { type: 'boolean', help: 'print stack traces for errors' },
  quiet: { type: 'boolean', short: 'q', help: 'no progress messages on stderr' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
}

/**
 * Options of every command that compiles a model (infer, eval, export, compile, serve): the
 * approximation and its calibration data.
 */
export const APPROX_OPTIONS: Record<string, OptionSpec> = {
  approx: { type: 'string', arg: 'SPEC', help: "activation approximation: none (default), hermite:D, chebyshev:D, minimax:D, wls:D, ola[:BUDGET]; D may be a list D1,D2,... (one degree per layer)" },
  'approx-norm': { type: 'string', arg: 'SPEC', help: `LayerNorm on a secret: newton:D,K (initial guess of degree D for 1/sqrt(var + eps) over the calibrated range, K Newton steps) or none; default ${DEFAULT_NORM} under --approx` },
  'approx-softmax': { type: 'string', arg: 'SPEC', help: `Softmax on a secret: exp:K ((1 + z/2^K)^(2^K)), poly:D (fitted exp), 2quad[:C] (MPCFormer), thex (ReLU attention) or none, each optionally +newton:D,K for the reciprocal of the sum; default ${DEFAULT_SOFTMAX} under --approx` },
  calib: { type: 'string', arg: 'C.npy', help: "calibration inputs for --approx and --relu-budget; also every value's range, checked against the mpc fixed-point and CKKS modulus headroom" },
  maxpool: { type: 'string', arg: 'MODE', help: "MaxPool under --approx: 'poly' (polynomial max, default) or 'avg' (average pooling; changes semantics)" },
  'keep-relu': { type: 'boolean', help: 'approximate every activation except ReLU, which stays for garbled circuits (default for --backend mpc)' },
  'relu-budget': { type: 'string', arg: 'N', help: 'SENet ReLU budget: a count or a fraction (0..1) of the ReLUs to keep' },
  trace: { type: 'boolean', help: 'print the IR after each pass on stderr' },
  exact: { type: 'boolean', help: "calibration, OLA and eval in float64 throughout (default: onnxruntime-node's float32 Conv, Gemm and MatMul where it is installed)" },
}

/** Options only a backend reads (pic compile, pic serve): mpc, CKKS or both. */
export const BACKEND_OPTIONS: Record<string, OptionSpec> = {
  'range-margin': { type: 'string', arg: 'X', help: 'factor on the calibrated max |x| of every value for the headroom checks (default 2)' },
  'truncation-limit': { type: 'string', arg: 'P', help: "mpc: largest accepted truncation failure probability per inference, a number or 2^-K (default 2^-12)" },
  'approx-relu': { type: 'boolean', help: 'with --backend mpc and --approx: approximate ReLUs too (Beaver triples instead of garbled circuits)' },
  security: { type: 'string', arg: 'BITS', help: 'CKKS security level: 128 (default), 192 or 256' },
  refresh: { type: 'string', arg: 'MODE', help: "CKKS: 'client' (default: client-aided refreshes where the depth needs them) or 'none' (leveled only: the plan runs without interaction, or is refused)" },
  'refresh-at': { type: 'string', arg: 'WHERE', help: "CKKS refreshes: 'cost' (default: where the modelled latency of the whole plan is lowest) or 'latest' (only where a step would overrun the chain)" },
}

/** Everything pic compile takes besides its own options. */
export const COMPILE_OPTIONS: Record<string, OptionSpec> = { ...APPROX_OPTIONS, ...BACKEND_OPTIONS }

/** Which built-in backends read each backend option (a plugin gets them all, unchecked). */
const OPTION_BACKENDS: Record<string, readonly string[]> = {
  'range-margin': ['ckks', 'mpc'],
  'truncation-limit': ['mpc'],
  'approx-relu': ['mpc'],
  security: ['ckks'],
  refresh: ['ckks'],
  'refresh-at': ['ckks'],
  'keep-relu': ['mpc', 'ir'],
}

/**
 * Refuse (usage error) compile options the built-in `backend` would ignore or contradict:
 * a CKKS-only option with mpc or ir, an mpc-only one with ckks or ir, --keep-relu with ckks (CKKS
 * cannot evaluate an exact ReLU), --approx-relu without --approx or with --keep-relu.
 */
export function checkCompileOptions(args: ParsedArgs, backend: string, cmd: Command): void {
  if (flag(args, 'approx-relu') && (str(args, 'approx') ?? 'none') === 'none') throw new UsageError('--approx-relu approximates ReLUs with the --approx fit: give --approx SPEC --calib C.npy too', cmd)
  if (flag(args, 'approx-relu') && flag(args, 'keep-relu')) throw new UsageError('--approx-relu and --keep-relu contradict each other: give one', cmd)
  if (!['ir', 'ckks', 'mpc'].includes(backend)) return
  for (const [name, takers] of Object.entries(OPTION_BACKENDS)) {
    if (args.values[name] === undefined || takers.includes(backend)) continue
    if (name === 'keep-relu') throw new UsageError('--keep-relu keeps ReLUs exact for garbled circuits, which --backend ckks cannot evaluate: drop it (CKKS approximates every activation under --approx)', cmd)
    throw new UsageError(`--${name} is for --backend ${takers.join(' or ')}; --backend ${backend} does not use it`, cmd)
  }
}

export function parse(cmd: Command, argv: string[]): ParsedArgs {
  const options = Object.fromEntries(
    Object.entries({ ...GLOBAL_OPTIONS, ...cmd.options }).map(([k, v]) => [k, { type: v.type, ...(v.short ? { short: v.short } : {}), ...(v.multiple ? { multiple: true } : {}) }]),
  )
  try {
    const { values, positionals } = parseArgs({ args: argv, options: options as ParseArgsConfig['options'], allowPositionals: true, strict: true })
    return { values: values as ParsedArgs['values'], positionals }
  } catch (e) {
    const err = e as Error & { code?: string }
    const unknown = /^Unknown option '([^']+)'/.exec(err.message)
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown) {
      const known = Object.entries(options).flatMap(([k, v]) => [`--${k}`, ...(v.short ? [`-${v.short}`] : [])])
      const name = unknown[1].startsWith('--') ? unknown[1].split('=')[0] : unknown[1]
      throw new UsageError(`unknown option '${name}'${didYouMean(name, known.filter((k) => k.startsWith('--') === name.startsWith('--')))}`, cmd)
    }
    throw new UsageError(err.message.replace(/^TypeError \[[A-Z_]+\]: /, ''), cmd)
  }
}

/** Levenshtein distance (insertions, deletions, substitutions each cost 1). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const cur = [i]
    for (let j = 1; j <= b.length; j++) cur.push(Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)))
    prev = cur
  }
  return prev[b.length]
}

/**
 * The near miss of `word` among `candidates`, as " (did you mean 'X'?)" or '': the candidate at the
 * smallest edit distance if that is at most 2 and at most half the word's length (dashes aside), else the only
 * candidate that starts with the word (at least 2 characters, dashes aside) or that the word starts with.
 */
export function didYouMean(word: string, candidates: readonly string[]): string {
  let best: string | undefined
  let bestD = Infinity
  for (const c of candidates) {
    const d = editDistance(word, c)
    if (d < bestD) [best, bestD] = [c, d]
  }
  if (best !== undefined && bestD <= Math.min(2, Math.floor(word.replace(/^-+/, '').length / 2))) return ` (did you mean '${best}'?)`
  const prefix = candidates.filter((c) => (word.replace(/^-+/, '').length >= 2 && c.startsWith(word)) || (c.replace(/^-+/, '').length >= 2 && word.startsWith(c)))
  return prefix.length === 1 ? ` (did you mean '${prefix[0]}'?)` : ''
}

export class UsageError extends PicError {
  constructor(
    message: string,
    readonly cmd?: Command,
  ) {
    super(message)
  }
}

/** The one positional argument a command takes (MODEL, PLAN, ...). */
export function onePositional(args: ParsedArgs, cmd: Command, what: string): string {
  if (args.positionals.length !== 1) throw new UsageError(args.positionals.length === 0 ? `missing ${what}` : `unexpected argument '${args.positionals[1]}'`, cmd)
  return args.positionals[0]
}

export function str(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name]
  return typeof v === 'string' ? v : undefined
}

export function need(args: ParsedArgs, name: string, cmd: Command): string {
  const v = str(args, name)
  if (v === undefined) throw new UsageError(`--${name} is required`, cmd)
  return v
}

export function flag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true
}

/** Progress and notes go to stderr unless --quiet. */
export function logger(args: ParsedArgs): (msg: string) => void {
  return flag(args, 'quiet') ? () => {} : (msg) => process.stderr.write(`pic: ${msg}\n`)
}

let accelerator: Accelerator | null | undefined

/**
 * The fast path for the runs over data (calibration, OLA, the ReLU budget, `eval`): onnxruntime's
 * kernels (compiler/ort.ts), or undefined with --exact or without onnxruntime-node. Noted once on stderr.
 */
export function accelFor(args: ParsedArgs): Accelerator | undefined {
  if (flag(args, 'exact')) return undefined
  if (accelerator === undefined) {
    const log = logger(args)
    accelerator = ortAccelerator({ onError: log }) ?? null
    log(accelerator ? `runs over data use ${accelerator.name}; --exact for float64 throughout` : 'onnxruntime-node is not installed or not usable here: runs over data use the float64 interpreter')
  }
  return accelerator ?? undefined
}

export function printJSON(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj, null, 2) + '\n')
}

/**
 * The compile options the flags set, with the calibration tensor loaded (compiler/api.ts
 * `CompileOptions`); malformed values are usage errors (exit 2), found before any work.
 */
export function compileOptionsOf(args: ParsedArgs): CompileOptions {
  const approx = str(args, 'approx') ?? 'none'
  try {
    parseApprox(approx)
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  const approxNorm = str(args, 'approx-norm')
  const approxSoftmax = str(args, 'approx-softmax')
  try {
    if (approxNorm !== undefined) parseNormSpec(approxNorm)
    if (approxSoftmax !== undefined) parseSoftmaxSpec(approxSoftmax)
  } catch (e) {
    throw new UsageError((e as Error).message)
  }
  const mp = str(args, 'maxpool')
  if (mp !== undefined && mp !== 'poly' && mp !== 'avg') throw new UsageError(`--maxpool '${mp}': expected poly or avg`)
  const calibFile = str(args, 'calib')
  const budget = str(args, 'relu-budget')
  const norms = [approxNorm, approxSoftmax].filter((s) => s !== undefined && s !== 'none')
  const needsCalib = approx !== 'none' || budget !== undefined || norms.length > 0
  const needer = approx !== 'none' ? `--approx ${approx}` : approxNorm && approxNorm !== 'none' ? `--approx-norm ${approxNorm}` : norms.length ? `--approx-softmax ${approxSoftmax}` : '--relu-budget'
  if (needsCalib && !calibFile) throw new UsageError(`--calib C.npy is required with ${needer}`)
  const calib: Tensor | undefined = calibFile ? readFiniteNpy(calibFile) : undefined
  const margin = str(args, 'range-margin')
  const limit = str(args, 'truncation-limit')
  const rangeMargin = margin === undefined ? undefined : Number(margin)
  if (rangeMargin !== undefined && !(rangeMargin >= 1 && Number.isFinite(rangeMargin))) throw new UsageError(`--range-margin must be a number >= 1, got '${margin}'`)
  const pow = limit?.match(/^2\^(-?\d+(?:\.\d+)?)$/)
  const truncationLimit = limit === undefined ? undefined : pow ? 2 ** Number(pow[1]) : Number(limit)
  if (truncationLimit !== undefined && !(truncationLimit > 0 && truncationLimit <= 1)) throw new UsageError(`--truncation-limit must be a probability in (0, 1] or 2^-K, got '${limit}'`)
  const batch = str(args, 'batch')
  return {
    approx,
    approxNorm,
    approxSoftmax,
    maxpool: mp as CompileOptions['maxpool'],
    keepRelu: flag(args, 'keep-relu'),
    approxRelu: flag(args, 'approx-relu'),
    reluBudget: budget,
    // checked by the backend that reads them (CKKS: one line naming the flag)
    security: str(args, 'security') as CompileOptions['security'],
    refresh: str(args, 'refresh') as CompileOptions['refresh'],
    refreshAt: str(args, 'refresh-at') as CompileOptions['refreshAt'],
    batch: batch === undefined || batch === 'auto' ? batch : Number(batch),
    rangeMargin,
    truncationLimit,
    calib,
    log: logger(args),
    accel: calib ? accelFor(args) : undefined,
    trace: flag(args, 'trace') ? (p: Pass, h: Graph) => process.stderr.write(`--- after ${p.name}\n${printGraph(h)}`) : undefined,
  }
}

/**
 * Compile `g` with the backend's pipeline (then `extra` passes) under the compile flags, with
 * --trace support: compiler/api.ts `compileGraph`, the path the programmatic `compile` takes.
 */
export function compileFor(g: Graph, backend: Pick<Backend, 'pipeline' | 'defaults'>, args: ParsedArgs, extra: readonly Pass[] = []): { compiled: Graph; cx: PassContext } {
  return compileGraph(g, backend, { ...compileOptionsOf(args), extra })
}

export function helpText(cmd: Command): string {
  const opts = Object.entries({ ...cmd.options, ...GLOBAL_OPTIONS })
  const label = (k: string, v: OptionSpec) => `${v.short ? `-${v.short}, ` : '    '}--${k}${v.arg ? ` ${v.arg}` : ''}`
  const width = Math.max(...opts.map(([k, v]) => label(k, v).length)) + 2
  const lines = [`usage: ${cmd.usage}`, '', cmd.summary, '', 'options:']
  for (const [k, v] of opts) lines.push(`  ${label(k, v).padEnd(width)}${v.help}`)
  return lines.join('\n') + '\n'
}
