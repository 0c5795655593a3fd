/**
 * `pic report MODEL [--approx SPEC --calib C.npy] [--backend ckks|mpc] [--data X.npy --labels y.npy] -o FILE`:
 * one self-contained HTML page (compiler/report-html.ts: inline CSS and SVG, no script, no network).
 * The model compiles through `pic compile`'s path (compileGraph with the flags, then the backend's
 * lower); the page shows
 * - the model (op counts, parameters) and the compile options;
 * - the compiled graph's nodes (Constants aside) in graph order: op, shape, and the elements of a
 *   non-polynomial node (ReLUs for garbled circuits, say) or a polynomial's degree;
 * - per-layer costs: CKKS estimated ms (`estimateMs` over each node's instructions, as the plan's
 *   total is computed) and the level a node leaves its result at; mpc the schedule's per-layer bytes
 *   (online, offline) and rounds;
 * - per approximated activation (`cx.report.layers`): the calibration histogram of its input (the
 *   graph the approximate pass received, measured again by `calibrate`), the true function (the
 *   activation's own reference `fn`; |x| for MaxPool's Abs) and the fitted polynomial (`applyPoly`
 *   of the node the pass wrote; x p(x) for Abs) over the histogram's range, with the pass's errors;
 * - with --data and --labels, top-1 accuracy of the original and the compiled model as `pic eval`
 *   computes it (the ir pipeline at eval's batch, both run with runBatched);
 * - the plan's parameters and keys.
 * Same inputs give the same bytes (no dates, fixed number formats).
 */
import type { CkksPlanFile } from '../backends/ckks/index.js'
import { estimateMs } from '../backends/ckks/compile.js'
import type { Instr } from '../backends/ckks/plan.js'
import { BACKENDS } from '../backends/index.js'
import type { MpcSchedule } from '../backends/mpc/index.js'
import { withBatchSize } from '../ir/builder.js'
import type { Graph, Node } from '../ir/graph.js'
import { batchSize, runBatched } from '../ir/interpret.js'
import { polyDegree, type PolyAttrs, applyPoly } from '../ir/ops/pi.js'
import { nonPolynomialNodes, opCounts, parameterCount } from '../ir/stats.js'
import { sizeOf, tensor, type Tensor } from '../ir/tensor.js'
import { activations } from '../passes/activations.js'
import type { LayerReport } from '../passes/approximate.js'
import { calibrate } from '../passes/calibrate.js'
import { argmax } from '../passes/ola.js'
import { compileGraph } from './api.js'
import { accelFor, checkCompileOptions, COMPILE_OPTIONS, compileFor, compileOptionsOf, didYouMean, flag, logger, need, onePositional, printJSON, str, UsageError, type Command, type ParsedArgs } from './cli-kit.js'
import { checkWritable, PicError, writeUserFile } from './errors.js'
import { loadModel } from './model.js'
import { readFiniteNpy, readNpy } from './npy.js'
import { barChart, esc, facts, histogramPlot, num, page, table } from './report-html.js'


/** The polynomial the approximate pass put at `value` (Poly, PartialRelu's poly, or Abs's x * p(x)). */
function fittedPoly(g: Graph, value: string): PolyAttrs | undefined {
  const n = g.nodes.find((v) => v.name === value)
  if (n?.op === 'Poly') return n.attrs as unknown as PolyAttrs
  if (n?.op === 'PartialRelu') return (n.attrs as { poly?: PolyAttrs }).poly
  const sign = g.nodes.find((v) => v.name === `${value}_sign`)
  return sign?.op === 'Poly' ? (sign.attrs as unknown as PolyAttrs) : undefined
}

/** The table's last column: a non-polynomial node's elements, a polynomial's degree. */
function nodeCost(n: Node, nonPoly: ReadonlySet<string>): string {
  if (nonPoly.has(n.name)) return `${sizeOf(n.type.shape)} non-polynomial (${n.op})`
  const p = n.op === 'Poly' ? (n.attrs as unknown as PolyAttrs) : n.op === 'PartialRelu' ? (n.attrs as { poly?: PolyAttrs }).poly : undefined
  return p ? `degree ${polyDegree(p)}` : ''
}

/** One plot per approximated activation, with its error line. */
function activationPlots(before: Graph, after: Graph, layers: readonly LayerReport[], calib: Tensor, args: ParsedArgs): string[] {
  const stats = calibrate(before, calib, { nodes: layers.map((l) => l.value), log: logger(args), accel: accelFor(args) })
  const acts = new Map(activations(before).map((a) => [a.node.name, a]))
  return layers.map((l) => {
    const act = acts.get(l.value)!
    const p = fittedPoly(after, l.value)!
    const h = stats.get(l.value)!.histogram
    const K = 200
    const xs = Float64Array.from({ length: K + 1 }, (_, i) => h.lo + ((h.hi - h.lo) * i) / K)
    const sign = act.target === 'Sign'
    const row = { ...p, coeffs: [p.coeffs[0]], shift: [p.shift[0]], scale: [p.scale[0]] }
    const fit = applyPoly(row, tensor('float64', [xs.length], xs)).map((v, i) => (sign ? v * xs[i] : v))
    const truth = sign ? xs.map(Math.abs) : act.fn(xs)
    const fn = sign ? '|x|' : l.op
    const svg = histogramPlot(`${l.name} (${l.op})`, h, [
      { name: `${fn} (true)`, xs, ys: truth },
      { name: `${l.method} degree ${l.degree}${p.coeffs.length > 1 ? ` (channel 0 of ${p.coeffs.length})` : ''}`, xs, ys: fit },
    ])
    const where = l.interval ? `interval [${num(l.interval[0])}, ${num(l.interval[1])}]` : `mean ${num(l.stats.mean)}, std ${num(l.stats.std)}`
    return `<div class="plot">${svg}<p>${esc(`${l.method} (${l.basis}) degree ${l.degree}, depth ${l.depth}, ${where}; error on the calibration values: max ${num(l.maxAbsError)}, rms ${num(l.rmsError)}`)}</p></div>`
  })
}

/** CKKS per node: estimated ms of its instructions and the level its last instruction leaves. */
function ckksLayers(plan: CkksPlanFile): { names: string[]; ms: number[]; levels: number[] } {
  const level = new Map<number, number>()
  for (const i of plan.instructions) level.set(i.dst, i.level)
  const by = new Map<string, Instr[]>()
  for (const i of plan.instructions) by.set(i.node ?? '(unnamed)', [...(by.get(i.node ?? '(unnamed)') ?? []), i])
  const onDemand = plan.plaintexts === 'on demand' ? { primes: plan.params.primes.length - 1 } : undefined
  const names = [...by.keys()]
  // estimateMs prices an op at the level its first argument's register has in the whole list (the
  // register's last write there): zero-cost markers after a node's instructions carry those levels in,
  // so the per-node sums add up to the plan's total
  const priced = (is: Instr[]) => {
    const marks = [...new Set(is.flatMap((i) => i.args))].map((r) => ({ op: 'input', dst: r, args: [], level: level.get(r)!, scale: 1 }) as unknown as Instr)
    return estimateMs([...is, ...marks], plan.params.logN, onDemand).total
  }
  return { names, ms: names.map((n) => priced(by.get(n)!)), levels: names.map((n) => by.get(n)!.at(-1)!.level) }
}

export const reportCommand: Command = {
  name: 'report',
  summary: 'Write one self-contained HTML page: layers, per-layer costs, each fitted activation over its calibration histogram, accuracy, plan parameters and keys.',
  usage: 'pic report MODEL [--approx SPEC --calib C.npy] [--backend ckks|mpc] [--data X.npy --labels y.npy] -o report.html [--json]',
  options: {
    backend: { type: 'string', arg: 'ckks|mpc', help: 'lower for this backend and show its per-layer costs and parameters (default: the IR only)' },
    output: { type: 'string', short: 'o', arg: 'FILE', help: 'the HTML file to write' },
    data: { type: 'string', arg: 'X.npy', help: 'with --labels: accuracy before and after, as pic eval computes it' },
    labels: { type: 'string', arg: 'y.npy', help: 'integer labels, one per --data input' },
    ...COMPILE_OPTIONS,
  },
  async run(args) {
    const file = onePositional(args, reportCommand, 'MODEL')
    const out = need(args, 'output', reportCommand)
    const which = str(args, 'backend') ?? 'ir'
    if (!['ir', 'ckks', 'mpc'].includes(which)) throw new UsageError(`--backend must be 'ckks' or 'mpc', got '${which}'${didYouMean(which, ['ckks', 'mpc'])}`, reportCommand)
    if ((str(args, 'data') === undefined) !== (str(args, 'labels') === undefined)) throw new UsageError('give --data and --labels together', reportCommand)
    checkCompileOptions(args, which, reportCommand)
    checkWritable(out)
    const log = logger(args)
    const step = <T>(what: string, f: () => T): T => {
      const t0 = performance.now()
      const r = f()
      const s = (performance.now() - t0) / 1000
      if (s > 2) log(`report: ${what} took ${s.toFixed(1)} s`)
      return r
    }
    const original = loadModel(file)
    const backend = BACKENDS[which]
    const options = compileOptionsOf(args)
    // the graphs the approximate pass received and returned, seen through the pipeline's trace hook
    let prev = original
    let before: Graph | undefined
    let after: Graph | undefined
    log(`report: compiling ${file} for ${which}`)
    const { compiled, cx } = step('compiling', () =>
      compileGraph(original, backend, {
        ...options,
        trace: (p, g) => {
          options.trace?.(p, g)
          if (p.name === 'approximate') [before, after] = [prev, g]
          prev = g
        },
      }),
    )
    let plan: unknown
    if (which !== 'ir') {
      try {
        plan = step('lowering', () => backend.lower(compiled, cx).plan)
      } catch (e) {
        if (e instanceof PicError && !e.message.startsWith(`${file}: `)) throw new PicError(`${file}: ${e.message}`)
        throw e
      }
    }
    const sections: { id: string; title: string; html: string }[] = []
    const given = Object.entries(args.values).filter(([k, v]) => v !== undefined && !['output', 'json', 'quiet', 'debug', 'trace'].includes(k))
    sections.push({
      id: 'model',
      title: 'Model and options',
      html: facts([
        ['model', file],
        ['ops', Object.entries(opCounts(original)).map(([k, v]) => `${k} ${v}`).join(', ')],
        ['parameters', parameterCount(original)],
        ['backend', which],
        ['options', given.map(([k, v]) => (v === true ? `--${k}` : `--${k} ${String(v)}`)).join(' ') || '(none)'],
      ]),
    })
    const nonPoly = new Set(nonPolynomialNodes(compiled).map((n) => n.name))
    const rows = compiled.nodes.filter((n) => n.op !== 'Constant').map((n) => [n.origin?.name || n.name, n.op, `[${n.type.shape.join(', ')}]`, nodeCost(n, nonPoly)])
    sections.push({ id: 'layers', title: `Compiled graph (${rows.length} nodes, constants aside)`, html: table(['node', 'op', 'shape', 'non-polynomial elements / degree'], rows, 'layers') })
    const charts: string[] = []
    if (which === 'ckks') {
      const p = plan as CkksPlanFile
      const l = ckksLayers(p)
      const origin = new Map(compiled.nodes.map((n) => [n.name, n.origin?.name || n.name]))
      const labels = l.names.map((n) => origin.get(n) ?? n)
      charts.push(barChart('estimated ms per layer', labels, [{ name: 'ms', values: l.ms }], 'ms'), barChart('level after each layer', labels, [{ name: 'level', values: l.levels }], 'levels'))
      const s = p.stats
      sections.push({ id: 'costs', title: 'Per-layer costs (CKKS)', html: `${charts.join('\n')}<p class="note">${esc(`layers as the plan's instructions name them (a run of linear layers is lowered with the node it feeds); sum over layers ${num(l.ms.reduce((a, b) => a + b, 0))} ms; the plan's estimate ${num(s.estimatedTotalMs)} ms per inference`)}</p>` })
      sections.push({
        id: 'plan',
        title: 'Plan parameters and keys (CKKS)',
        html: facts([
          ['ring degree N', 2 ** p.params.logN],
          ['primes (bits)', `[${p.params.primes.join(', ')}] = ${p.params.totalBits} bits`],
          ['scale', `2^${p.params.logScale}`],
          ['security', `${p.params.security} bits`],
          ['rotation keys', s.rotationKeys],
          ['relinearization key', p.keys.relin ? 'yes' : 'no'],
          ['key bytes', s.keyBytes.total],
          ['depth', s.depth],
          ['refreshes per inference', s.bootstraps],
          ['instructions', p.instructions.length],
        ]),
      })
    } else if (which === 'mpc') {
      const p = plan as MpcSchedule
      const names = p.layers.map((r) => r.name)
      charts.push(
        barChart('bytes per layer', names, [{ name: 'online', values: p.layers.map((r) => r.bytes.online) }, { name: 'offline', values: p.layers.map((r) => r.bytes.offline) }], 'bytes'),
        barChart('rounds per layer', names, [{ name: 'rounds', values: p.layers.map((r) => r.rounds) }], 'rounds'),
      )
      sections.push({ id: 'costs', title: 'Per-layer costs (mpc)', html: charts.join('\n') })
      sections.push({
        id: 'plan',
        title: 'Schedule parameters (mpc)',
        html: facts([
          ...Object.entries(p.params).filter(([, v]) => typeof v === 'number' || typeof v === 'string').map(([k, v]) => [k, v as string | number] as [string, string | number]),
          ['garbled ReLUs', p.reluCount],
          ['comparisons', p.comparisons],
          ['Beaver triples', p.triples],
          ['AND gates', p.andGates],
          ['rounds', p.rounds],
          ['bytes online / offline', `${p.bytes.online} / ${p.bytes.offline}`],
        ]),
      })
    }
    const layers = (cx.report.layers as LayerReport[] | undefined) ?? []
    const plots = layers.length && before && after && cx.calib ? step('measuring the calibration histograms', () => activationPlots(before!, after!, layers, cx.calib!, args)) : []
    sections.push({ id: 'activations', title: `Approximated activations (${plots.length})`, html: plots.join('\n') || '<p class="note">none (no --approx, or nothing to approximate)</p>' })
    let accuracy: { original: number; compiled: number; samples: number } | undefined
    const dataFile = str(args, 'data')
    if (dataFile) {
      const x = readFiniteNpy(dataFile)
      const labelsFile = str(args, 'labels')!
      const y = readNpy(labelsFile)
      const n = x.shape[0]
      if (y.data.length !== n) throw new PicError(`${labelsFile}: ${y.data.length} labels for ${n} inputs`)
      accuracy = step('evaluating accuracy', () => {
        // pic eval's computation: the ir pipeline at eval's batch, original and compiled over the same data
        const { compiled: evalGraph } = compileFor(withBatchSize(original, batchSize(original, n)) ?? original, BACKENDS.ir, args)
        const acc = (o: Tensor) => argmax(o).filter((v, i) => v === y.data[i]).length / n
        return { original: acc(runBatched(original, x, { accel: accelFor(args) })[0]), compiled: acc(runBatched(evalGraph, x, { accel: accelFor(args) })[0]), samples: n }
      })
      sections.push({ id: 'accuracy', title: 'Accuracy', html: facts([['samples', n], ['original (top-1)', `${(100 * accuracy.original).toFixed(2)}%`], ['compiled (top-1)', `${(100 * accuracy.compiled).toFixed(2)}%`]]) })
    }
    writeUserFile(out, page(`pic report: ${file}`, sections))
    const summary = { file: out, sections: sections.map((s) => s.id), plots: charts.length + plots.length, activationPlots: plots.length, layers: rows.length, ...(accuracy ? { accuracy } : {}) }
    if (flag(args, 'json')) printJSON(summary)
    else log(`wrote ${out}: ${summary.sections.length} sections, ${summary.plots} plots`)
  },
}
