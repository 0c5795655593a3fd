/**
 * The command table and the model commands: inspect, infer, eval and compile. Other commands live in
 * their own cmd-*.ts files and are listed here.
 */
import { mkdirSync, statSync, unlinkSync } from 'node:fs'
import path from 'node:path'
import { BACKENDS, loadBackend } from '../backends/index.js'
import type { Backend } from '../backends/backend.js'
import { attachSidecar, ckksBackend, type CkksPlanFile } from '../backends/ckks/index.js'
import { batchOf, simulatePlan } from '../backends/ckks/simulate.js'
import { mpcBackend, type MpcSchedule } from '../backends/mpc/index.js'
import { simulateSchedule } from '../backends/mpc/simulate.js'
import { irBackend } from '../backends/ir/index.js'
import { symbolicShapes, withBatchSize } from '../ir/builder.js'
import type { Sidecar } from '../ir/serialize.js'
import { graphInputs, inputDims, type Graph } from '../ir/graph.js'
import { batchSize, bindInputs, interpret, runBatched } from '../ir/interpret.js'
import { activationCounts, opCounts, parameterCount } from '../ir/stats.js'
import { argmax, top1Agreement } from '../passes/ola.js'
import { maxAbsDiff, type Tensor } from '../ir/tensor.js'
import {
  accelFor, APPROX_OPTIONS, checkCompileOptions, COMPILE_OPTIONS, compileFor, didYouMean, flag, logger, need, onePositional, printJSON, str, UsageError,
  type Command, type ParsedArgs,
} from './cli-kit.js'
import { exportCommand } from './cmd-export.js'
import { reportCommand } from './cmd-report.js'
import { dealer, query, serve } from './cmd-mpc.js'
import { clientPartPath, writeCompanions } from './cmd-ckks.js'
import { run } from './cmd-run.js'
import { cannotWrite, checkWritable, PicError, writeUserFile } from './errors.js'
import { checkFinite, readFiniteNpy, readNpy, writeNpy } from './npy.js'
import { bindable, inputNamesOf, loadModel, needsBinding, readTensorFile, sidecarPath, writeChunks } from './model.js'

function modelArg(args: ParsedArgs, cmd: Command): string {
  return onePositional(args, cmd, 'MODEL')
}

/** Name, dtype and shape (symbolic dims named) of the given values. */
function describeValues(g: Graph, names: readonly string[]) {
  const dimOf = symbolicShapes(g)
  return names.map((name) => {
    const n = g.nodes.find((v) => v.name === name)!
    const shape = n.op === 'Input' ? inputDims(n) : dimOf(name).map((d, i) => d ?? n.type.shape[i])
    return { name, dtype: n.type.dtype, shape }
  })
}

const inspect: Command = {
  name: 'inspect',
  summary: 'Describe a model: inputs, outputs, op counts, parameters, activation sizes and ReLU count at batch 1.',
  usage: 'pic inspect MODEL [--json]',
  options: {},
  run(args) {
    const file = modelArg(args, inspect)
    const g = loadModel(file)
    const activations = activationCounts(g)
    const info = {
      inputs: describeValues(g, graphInputs(g).map((n) => n.name)),
      outputs: describeValues(g, g.outputs),
      ops: opCounts(g, true),
      parameters: parameterCount(g),
      activations,
      reluCount: activations.Relu ?? 0,
    }
    if (flag(args, 'json')) return printJSON(info)
    const dims = (s: readonly (string | number)[]) => `[${s.join(', ')}]`
    const lines = [`${file}: opset ${g.opset}, ${g.nodes.length} values`]
    for (const i of info.inputs) lines.push(`  input  ${i.name}: ${i.dtype}${dims(i.shape)}`)
    for (const o of info.outputs) lines.push(`  output ${o.name}: ${o.dtype}${dims(o.shape)}`)
    lines.push(`  ops: ${Object.entries(info.ops).map(([k, v]) => `${k} ${v}`).join(', ')}`)
    lines.push(`  parameters: ${info.parameters}`)
    lines.push(`  activations (elements at batch 1): ${Object.entries(activations).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}`)
    lines.push(`  ReLU count: ${info.reluCount}`)
    process.stdout.write(lines.join('\n') + '\n')
  },
}

/** The model with K images per inference (`pic compile --batch K`): its symbolic batch bound to K. */
function batched(g: Graph, file: string, k: string | undefined, backend: string): Graph {
  if (k === undefined) return g
  const K = k === 'auto' ? 0 : Number(k)
  if (k !== 'auto' && (!Number.isInteger(K) || K < 1 || K > 65536)) throw new UsageError(`--batch must be 'auto' or a whole number from 1 to 65536, got '${k}'`, compile)
  if (K === 1) return g
  if (backend !== 'ckks') throw new UsageError(`--batch is for --backend ckks (packing several images into one ciphertext), not ${backend}`, compile)
  // auto: the backend compiles at several batches and keeps the cheapest per image
  if (k === 'auto') return g
  const bound = withBatchSize(g, K)
  if (!bound) throw new PicError(`${file}: input '${graphInputs(g)[0]?.name}' has a fixed batch; --batch needs a symbolic first dimension`)
  return bound
}

/** The model bound to `batch` samples (when its batch dim is symbolic) and compiled for the ir backend. */
function compiledFor(original: Graph, batch: number, args: ParsedArgs): { compiled: Graph; report: Record<string, unknown> } {
  const bound = withBatchSize(original, batch) ?? original
  const { compiled, cx } = compileFor(bound, irBackend, args)
  return { compiled, report: cx.report }
}

const infer: Command = {
  name: 'infer',
  summary: 'Run a model on inputs with the float64 reference interpreter (optionally approximated).',
  usage: 'pic infer MODEL --input [NAME=]FILE [--input ...] (--output Y.npy | --output-dir DIR) [--approx SPEC --calib C.npy]',
  options: {
    input: { type: 'string', multiple: true, arg: '[NAME=]FILE', help: 'an input as .npy or ONNX TensorProto .pb, in graph order or by name' },
    output: { type: 'string', arg: 'Y.npy', help: 'write the first output here' },
    'output-dir': { type: 'string', arg: 'DIR', help: 'write every output as DIR/NAME.npy' },
    ...APPROX_OPTIONS,
  },
  async run(args) {
    const file = modelArg(args, infer)
    const specs = (args.values.input as string[] | undefined) ?? []
    const out = str(args, 'output')
    const outDir = str(args, 'output-dir')
    if (!out === !outDir) throw new UsageError('give exactly one of --output and --output-dir', infer)
    if (out) checkWritable(out)
    const all = inputNamesOf(file)
    if (specs.length === 0 && all.length > 0) throw new UsageError(`the model takes ${all.length} input${all.length > 1 ? 's' : ''}: give ${all.length > 1 ? 'them' : 'it'} with --input`, infer)
    const given = new Map<string, Tensor>()
    specs.forEach((s, i) => {
      const eq = s.indexOf('=')
      const named = eq > 0 && all.includes(s.slice(0, eq))
      const name = named ? s.slice(0, eq) : all[i]
      if (name === undefined) throw new PicError(`${file}: the model takes ${all.length} inputs, got ${specs.length}`)
      const f = named ? s.slice(eq + 1) : s
      given.set(name, checkFinite(readTensorFile(f), f))
    })
    let probe: Graph
    try {
      probe = loadModel(file)
    } catch (e) {
      // a shape operand fed as an input: specialise the graph on the inputs given that can be one (see bindable)
      if (!needsBinding(e)) throw e
      const bound = new Map([...given].filter(([name, t]) => bindable(t, name === all[0])))
      if (bound.size === 0) throw e
      probe = loadModel(file, undefined, bound)
      logger(args)(`bound input${bound.size > 1 ? 's' : ''} ${[...bound.keys()].map((k) => `'${k}'`).join(', ')} as constant${bound.size > 1 ? 's' : ''}: the graph is specialised on ${bound.size > 1 ? 'their' : 'its'} value`)
      for (const k of bound.keys()) given.delete(k)
    }
    const declared = graphInputs(probe).map((n) => n.name)
    const missing = declared.filter((d) => !given.has(d))
    if (missing.length) throw new PicError(`${file}: missing input${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')}`)
    const inputs = declared.map((d) => given.get(d)!)
    let outputs: Tensor[]
    const log = logger(args)
    // samples run in chunks only along a batch the model declares symbolic, and only when every
    // output keeps it as its first axis; otherwise the graph runs once on the inputs as given
    const chunked = inputs.length === 1 && inputs[0].shape.length > 0 && typeof inputDims(graphInputs(probe)[0])[0] === 'string' ? compiledFor(probe, batchSize(probe, inputs[0].shape[0]), args).compiled : undefined
    const chunk = chunked ? graphInputs(chunked)[0].type.shape[0] : 0
    if (chunked && chunked.outputs.every((o) => chunked.nodes.find((v) => v.name === o)!.type.shape[0] === chunk)) {
      outputs = runBatched(chunked, inputs[0])
    } else {
      const { compiled } = compileFor(bindInputs(probe, inputs), irBackend, args)
      const values = interpret(compiled, inputs)
      outputs = compiled.outputs.map((o) => values.get(o)!)
    }
    if (out) writeNpy(out, outputs[0])
    else {
      try {
        mkdirSync(outDir!, { recursive: true })
      } catch (e) {
        throw cannotWrite(outDir!, e)
      }
      probe.outputs.forEach((o, k) => writeNpy(path.join(outDir!, `${o.replace(/[^A-Za-z0-9_.-]/g, '_')}.npy`), outputs[k]))
    }
    if (flag(args, 'json')) printJSON({ outputs: probe.outputs.map((o, k) => ({ name: o, dtype: outputs[k].dtype, shape: outputs[k].shape })) })
    else log(`wrote ${out ?? `${probe.outputs.length} outputs to ${outDir}`}`)
  },
}

/**
 * `pic eval --simulate ckks|mpc`: the model compiled for that backend (its pipeline, then its
 * lowering), and the plan's arithmetic run without encryption on every input: for CKKS the noiseless
 * slot simulator with the plan's layout, rotations and plaintext products (backends/ckks/simulate.ts;
 * the encrypted run adds CKKS noise on top), for mpc the schedule's fixed-point ring arithmetic on one
 * party's view (backends/mpc/simulate.ts; the two-party run differs by local truncation units).
 * Returns the compiled graph (batch as lowered) and the simulated outputs.
 */
function simulateBackend(which: 'ckks' | 'mpc', original: Graph, file: string, x: Tensor, args: ParsedArgs): { compiled: Graph; report: Record<string, unknown>; outputs: Tensor; notes: string[] } {
  const log = logger(args)
  const backend = which === 'ckks' ? ckksBackend : mpcBackend
  checkCompileOptions(args, which, evaluate)
  const { compiled, cx } = compileFor(original, backend as Backend, args)
  let lowered: { plan: unknown; sidecar?: Sidecar }
  try {
    lowered = (backend as Backend).lower(compiled, cx)
  } catch (e) {
    if (e instanceof PicError && !e.message.startsWith(`${file}: `)) throw new PicError(`${file}: ${e.message}`)
    throw e
  }
  const n = x.shape[0]
  // progress: `image i/n`, the first after two seconds, then at most one a second; none for the last image
  let lastLine = performance.now() + 1000
  const progress = (done: number) => {
    if (done < n && performance.now() - lastLine >= 1000) {
      lastLine = performance.now()
      log(`simulate ${which}: image ${done}/${n}`)
    }
  }
  if (which === 'mpc') {
    const schedule = lowered.plan as MpcSchedule
    log(`simulate mpc: the schedule's ring arithmetic (${schedule.params.fracBits} fractional bits, weights ${schedule.params.weightFracBits}) on ${n} image(s)`)
    return { compiled, report: cx.report, outputs: simulateSchedule(compiled, schedule, x, (d) => progress(d)), notes: [] }
  }
  const chunks = (lowered.sidecar ?? []) as Uint8Array[]
  const { plan } = attachSidecar(lowered.plan as CkksPlanFile, chunks.length ? Buffer.concat(chunks) : undefined)
  const K = batchOf(plan)
  log(`simulate ckks: the plan's slot arithmetic without encryption (N = ${2 ** plan.params.logN}, ${plan.instructions.length} instructions${K > 1 ? `, ${K} images per inference` : ''}) on ${n} image(s)`)
  const notes = plan.stats.bootstraps > 0 ? [`the plan has ${plan.stats.bootstraps} client-aided refresh(es) per inference: simulated as exact (noiseless)`] : []
  // one inference (K images) at a time, for progress
  const per = x.data.length / Math.max(1, n)
  const outs: Tensor[] = []
  for (let from = 0; from < n; from += K) {
    const m = Math.min(K, n - from)
    outs.push(simulatePlan(plan, { ...x, shape: [m, ...x.shape.slice(1)], data: x.data.subarray(from * per, (from + m) * per) })[0])
    progress(from + m)
  }
  const row = outs[0].data.length / Math.max(1, outs[0].shape[0])
  const data = new Float64Array(n * row)
  let at = 0
  for (const o of outs) {
    data.set(o.data, at)
    at += o.data.length
  }
  // the reference graph the plan was lowered from (its batch may be K): run on the same inputs below
  return { compiled, report: cx.report, outputs: { dtype: 'float64', shape: [n, ...outs[0].shape.slice(1)], data }, notes }
}

const evaluate: Command = {
  name: 'eval',
  summary: 'Top-1 accuracy of the original and the compiled (approximated) model on labelled data; --simulate runs a backend\'s plan arithmetic without encryption.',
  usage: 'pic eval MODEL --data X.npy --labels y.npy [--approx SPEC --calib C.npy] [--simulate ckks|mpc] [--json]',
  options: {
    data: { type: 'string', arg: 'X.npy', help: 'inputs, batch on axis 0' },
    labels: { type: 'string', arg: 'y.npy', help: 'integer labels, one per input' },
    simulate: { type: 'string', arg: 'ckks|mpc', help: "compile for that backend and run its plan's arithmetic without encryption (CKKS: the noiseless slot simulator; mpc: the schedule's fixed-point ring arithmetic): accuracy and error against the plaintext model" },
    ...APPROX_OPTIONS,
  },
  async run(args) {
    const file = modelArg(args, evaluate)
    const sim = str(args, 'simulate')
    if (sim !== undefined && sim !== 'ckks' && sim !== 'mpc') throw new UsageError(`--simulate must be 'ckks' or 'mpc', got '${sim}'${didYouMean(sim, ['ckks', 'mpc'])}`, evaluate)
    const x = readFiniteNpy(need(args, 'data', evaluate))
    const labelsFile = need(args, 'labels', evaluate)
    const y = readNpy(labelsFile)
    const n = x.shape[0]
    if (y.data.length !== n) throw new PicError(`${labelsFile}: ${y.data.length} labels for ${n} inputs`)
    const original = loadModel(file)
    const log = logger(args)
    const t0 = performance.now()
    const simulated = sim ? simulateBackend(sim, original, file, x, args) : undefined
    const { compiled, report } = simulated ?? compiledFor(original, batchSize(original, n), args)
    const accel = accelFor(args)
    const [refOut] = runBatched(original, x, { accel })
    const [outC] = runBatched(compiled, x, { accel })
    const acc = (out: Tensor) => argmax(out).filter((v, i) => v === y.data[i]).length / n
    const simOut = simulated?.outputs
    const result = {
      accuracy: { original: acc(refOut), compiled: acc(outC), ...(simOut ? { simulated: acc(simOut) } : {}) },
      agreement: top1Agreement(refOut, outC),
      maxAbsError: maxAbsDiff(refOut, outC),
      samples: n,
      ...(simOut
        ? {
            simulate: {
              backend: sim,
              accuracy: acc(simOut),
              correct: Math.round(acc(simOut) * n),
              agreementVsOriginal: top1Agreement(refOut, simOut),
              maxAbsErrorVsOriginal: maxAbsDiff(refOut, simOut),
              agreementVsCompiled: top1Agreement(outC, simOut),
              maxAbsErrorVsCompiled: maxAbsDiff(outC, simOut),
              notes: simulated!.notes,
            },
          }
        : {}),
      ...(report.layers ? { layers: report.layers } : {}),
      ...(report.ola ? { ola: report.ola } : {}),
      ...(report.normalizations ? { normalizations: report.normalizations } : {}),
      ...(report.reluBudget ? { reluBudget: report.reluBudget } : {}),
    }
    log(`evaluated ${n} samples in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    for (const note of simulated?.notes ?? []) log(`note: ${note}`)
    if (flag(args, 'json')) return printJSON(result)
    const s = result.simulate
    process.stdout.write(
      `accuracy: original ${(100 * result.accuracy.original).toFixed(2)}%, compiled ${(100 * result.accuracy.compiled).toFixed(2)}%${s ? `, simulated ${sim} ${(100 * s.accuracy).toFixed(2)}%` : ''}\n` +
        `agreement: ${(100 * result.agreement).toFixed(2)}%, max abs logit error ${result.maxAbsError.toExponential(3)}, ${n} samples\n` +
        (s
          ? `simulated ${sim}: agreement ${(100 * s.agreementVsOriginal).toFixed(2)}% with the original, max abs logit error ${s.maxAbsErrorVsOriginal.toExponential(3)} vs the original, ${s.maxAbsErrorVsCompiled.toExponential(3)} vs the compiled model\n`
          : ''),
    )
  },
}

/**
 * Write the plan (`-o FILE`), its sidecar (FILE.bin) and companions (CKKS: FILE.client.json), each
 * whole (writeUserFile); returns the files with their sizes. If one fails, those already written are
 * removed again, so a failed -o leaves none of them; the failure is one line `cannot write FILE (CODE)`.
 */
function writePlan(out: string, backend: string, plan: unknown, sidecar: Sidecar | undefined): { file: string; bytes: number }[] {
  const done: string[] = []
  const step = (file: string, write: () => void) => {
    try {
      write()
    } catch (e) {
      // writeCompanions writes in place: a failure may leave its file truncated
      for (const f of [...done, ...(file === clientPartPath(out) ? [file] : [])]) removeFile(f)
      if (e instanceof PicError) throw e
      throw cannotWrite(file, e)
    }
    done.push(file)
  }
  step(out, () => writeUserFile(out, JSON.stringify(plan, null, 1) + '\n'))
  if (sidecar && sidecar.length > 0) step(sidecarPath(out), () => writeChunks(sidecarPath(out), sidecar))
  if (backend === 'ckks') step(clientPartPath(out), () => writeCompanions(backend, out, plan, sidecar))
  return done.map((file) => ({ file, bytes: statSync(file).size }))
}

/** Remove a file if there is one (not a directory). */
function removeFile(f: string): void {
  try {
    if (statSync(f).isFile()) unlinkSync(f)
  } catch {
    // none there
  }
}

const compile: Command = {
  name: 'compile',
  summary: 'Compile a model for a backend (ir, ckks, mpc or a plugin module) and write or print the plan.',
  usage: 'pic compile MODEL --backend ir|ckks|mpc|PLUGIN.js [--approx SPEC --calib C.npy] [--bind NAME=FILE] [-o FILE] [--json]',
  options: {
    backend: { type: 'string', arg: 'NAME', help: "'ir', 'ckks', 'mpc' or the path of a backend plugin module" },
    output: { type: 'string', short: 'o', arg: 'FILE', help: 'write the plan JSON here (large constants go to FILE with .bin)' },
    batch: { type: 'string', arg: 'K', help: "CKKS: images per inference, interleaved in the slots (default 1), or 'auto' (the cheapest per image); estimates stay per inference" },
    bind: { type: 'string', multiple: true, arg: 'NAME=FILE', help: "make graph input NAME a constant holding FILE's tensor (.npy or .pb): for shape operands fed as inputs" },
    ...COMPILE_OPTIONS,
  },
  async run(args) {
    const file = modelArg(args, compile)
    const spec = need(args, 'backend', compile)
    // a name that is neither built in nor a module path is a usage error (a near miss gets a suggestion)
    if (!BACKENDS[spec] && !spec.includes('/') && !spec.includes('\\') && !/\.(m?js|ts)$/.test(spec))
      throw new UsageError(`unknown backend '${spec}'${didYouMean(spec, Object.keys(BACKENDS)) || ` (built in: ${Object.keys(BACKENDS).join(', ')}; or a plugin module path)`}`, compile)
    checkCompileOptions(args, spec, compile)
    const out = str(args, 'output')
    if (out) checkWritable(out)
    const backend = await loadBackend(spec)
    const log = logger(args)
    const t0 = performance.now()
    const binds = new Map<string, Tensor>()
    for (const spec of (args.values.bind as string[] | undefined) ?? []) {
      const eq = spec.indexOf('=')
      if (eq <= 0) throw new UsageError(`--bind takes NAME=FILE, got '${spec}'`, compile)
      binds.set(spec.slice(0, eq), readTensorFile(spec.slice(eq + 1)))
    }
    const g = batched(loadModel(file, undefined, binds), file, str(args, 'batch'), backend.name)
    const { compiled, cx } = compileFor(g, backend, args)
    let lowered: ReturnType<typeof backend.lower>
    try {
      lowered = backend.lower(compiled, cx)
    } catch (e) {
      // the one-line form names the model: "MODEL: node 'NAME' (OP): PROBLEM"
      if (e instanceof PicError && !e.message.startsWith(`${file}: `)) throw new PicError(`${file}: ${e.message}`)
      throw e
    }
    const { plan, sidecar } = lowered
    log(`compiled ${file} for ${backend.name} in ${(performance.now() - t0).toFixed(0)} ms`)
    if (out) {
      const written = writePlan(out, backend.name, plan, sidecar)
      if (!flag(args, 'json')) process.stdout.write(`wrote ${written.map((w) => `${w.file} (${w.bytes} bytes)`).join(', ')}\n`)
    }
    if (flag(args, 'json')) printJSON({ backend: backend.name, ...backend.summary(plan, compiled) })
    else if (!out) process.stdout.write(backend.print(plan, sidecar))
  },
}


export const COMMANDS: readonly Command[] = [inspect, infer, evaluate, compile, exportCommand, reportCommand, run, dealer, serve, query]
