/**
 * The CLI's rough edges (issue 13, item 6): --version and help COMMAND, usage errors (exit 2, with
 * "did you mean" for near misses), write errors, EPIPE, NaN and infinities in inputs, fits that
 * diverge, and options that would be ignored or contradict each other. Every message is asserted
 * exactly; the CLI runs from dist/ (npm run build first).
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { didYouMean, editDistance } from '../../compiler/cli-kit.js'
import { encodeNpy, readNpy } from '../../compiler/npy.js'
import { importModel } from '../../compiler/onnx-import.js'
import { fitActivations, targets } from '../../passes/approximate.js'
import { passContext, PassError, runPipeline } from '../../passes/pass.js'
import { common } from '../../passes/pipelines.js'
import { digits, pic, picAsync, ROOT } from '../helpers.js'

const tmp = mkdtempSync(path.join(tmpdir(), 'pic-rough-'))
const VERSION = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version
const MLP = digits('mlp_relu.onnx')
const CALIB = digits('calib_x.npy')

/** The first `n` test images as float32, with `poke` applied to the data (a NaN or an infinity somewhere). */
function images(file: string, n: number, poke: (d: Float64Array) => void = () => {}, dtype: 'float32' | 'int32' = 'float32'): string {
  const x = readNpy(digits('test_x.npy'))
  const per = x.data.length / x.shape[0]
  const data = Float64Array.from(x.data.subarray(0, n * per))
  poke(data)
  const f = path.join(tmp, file)
  writeFileSync(f, encodeNpy({ dtype, shape: [n, ...x.shape.slice(1)], data }))
  return f
}

/** stderr's first line, and that nothing looks like a stack trace. */
function oneLine(stderr: string): string {
  expect(stderr).not.toMatch(/\n\s+at /)
  return stderr.split('\n')[0]
}

describe('--version and help COMMAND', () => {
  it('prints the package version, exit 0', () => {
    for (const arg of ['--version', '-V', 'version']) {
      const r = pic(arg)
      expect(r.code).toBe(0)
      expect(r.stdout).toBe(`pic ${VERSION}\n`)
    }
  })

  it('help CMD prints what CMD --help prints; help nosuch is a usage error', () => {
    const a = pic('help', 'compile')
    expect(a.code).toBe(0)
    expect(a.stdout).toBe(pic('compile', '--help').stdout)
    expect(a.stdout).toMatch(/^usage: pic compile /)
    const r = pic('help', 'nosuch')
    expect(r.code).toBe(2)
    expect(oneLine(r.stderr)).toBe("pic: error: unknown command 'nosuch'")
    expect(pic('help', 'compil').stderr.split('\n')[0]).toBe("pic: error: unknown command 'compil' (did you mean 'compile'?)")
  })
})

describe('usage errors exit 2, near misses get a suggestion', () => {
  it('the rule: edit distance <= 2 and <= half the word, else the one candidate it is a prefix of', () => {
    expect(editDistance('ckkz', 'ckks')).toBe(1)
    expect(didYouMean('ckkz', ['ir', 'ckks', 'mpc'])).toBe(" (did you mean 'ckks'?)")
    expect(didYouMean('tpu', ['ir', 'ckks', 'mpc'])).toBe('') // 2 edits from mpc, but the word has 3 letters
    expect(didYouMean('insp', ['inspect', 'infer', 'eval'])).toBe(" (did you mean 'inspect'?)")
    expect(didYouMean('--calibration', ['--calib', '--approx'])).toBe(" (did you mean '--calib'?)")
    expect(didYouMean('in', ['inspect', 'infer'])).toBe('') // a prefix of two
  })

  it.each([
    [['compil', MLP], "pic: error: unknown command 'compil' (did you mean 'compile'?)"],
    [['--verison'], "pic: error: unknown option '--verison' before a command (did you mean '--version'?)"],
    [['compile', MLP, '--backend', 'ckkz'], "pic: error: unknown backend 'ckkz' (did you mean 'ckks'?)"],
    [['compile', MLP, '--backend', 'tpu'], "pic: error: unknown backend 'tpu' (built in: ir, ckks, mpc; or a plugin module path)"],
    [['compile', MLP, '--bakend', 'ir'], "pic: error: unknown option '--bakend' (did you mean '--backend'?)"],
    [['compile', MLP, '--backend=ir', '--aprox=hermite:2'], "pic: error: unknown option '--aprox' (did you mean '--approx'?)"],
    [['compile', MLP, '--backend', 'ir', '--frobnicate'], "pic: error: unknown option '--frobnicate'"],
    [['compile', MLP], 'pic: error: --backend is required'],
    [['compile', MLP, '--backend', 'ir', '--approx', 'hermite:2'], 'pic: error: --calib C.npy is required with --approx hermite:2'],
    [['compile', MLP, '--backend', 'ir', '--approx', 'taylor:3', '--calib', CALIB], "pic: error: --approx 'taylor:3': expected none, hermite:D, chebyshev:D, minimax:D, wls:D or ola[:BUDGET]"],
    [['eval', MLP, '--data', digits('test_x.npy'), '--labels', digits('test_y.npy'), '--approx', 'hermite:2', '--calib', CALIB, '--maxpool', 'min'], "pic: error: --maxpool 'min': expected poly or avg"],
    [['eval', MLP, '--data', CALIB, '--labels', digits('test_y.npy'), '--security', '128'], "pic: error: unknown option '--security'"],
  ])('pic %j', (args, message) => {
    const r = pic(...args)
    expect(r.code).toBe(2)
    expect(oneLine(r.stderr)).toBe(message)
  })

  it('compile --help lists -o; infer, eval and export list only the options they take', () => {
    expect(pic('compile', '--help').stdout).toMatch(/^ {2}-o, --output FILE +write the plan JSON here/m)
    for (const cmd of ['infer', 'eval', 'export']) {
      const help = pic(cmd, '--help').stdout
      expect(help).toMatch(/--approx SPEC/)
      for (const ignored of ['--security', '--refresh', '--refresh-at', '--truncation-limit', '--range-margin', '--approx-relu', '--batch']) expect(help).not.toContain(`${ignored} `)
    }
  })
})

describe('write errors: one line naming the file and the code, nothing half-written', () => {
  it.each([
    ['/nonexistent/x.json', 'ENOENT'],
    [tmpdir(), 'EISDIR'],
  ])('compile -o %s', (out, code) => {
    const r = pic('compile', MLP, '--backend', 'ir', '-o', out, '--quiet')
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`pic: error: cannot write ${out} (${code})\n`)
  })

  it('infer --output, infer --output-dir and export -o', () => {
    const infer = pic('infer', MLP, '--input', images('x2.npy', 2), '--output', '/nonexistent/y.npy')
    expect([infer.code, infer.stderr]).toEqual([1, 'pic: error: cannot write /nonexistent/y.npy (ENOENT)\n'])
    const blocker = path.join(tmp, 'a-file')
    writeFileSync(blocker, '')
    const dir = pic('infer', MLP, '--input', images('x2.npy', 2), '--output-dir', path.join(blocker, 'out'), '--quiet')
    expect([dir.code, dir.stderr]).toEqual([1, `pic: error: cannot write ${path.join(blocker, 'out')} (ENOTDIR)\n`])
    const exp = pic('export', MLP, '-o', tmpdir(), '--quiet')
    expect([exp.code, exp.stderr]).toEqual([1, `pic: error: cannot write ${tmpdir()} (EISDIR)\n`])
  })

  it('a sidecar that cannot be written takes the plan with it', () => {
    const out = path.join(tmp, 'half.json')
    mkdirSync(path.join(tmp, 'half.bin'))
    const r = pic('compile', MLP, '--backend', 'ir', '-o', out, '--quiet')
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`pic: error: cannot write ${path.join(tmp, 'half.bin')} (EISDIR)\n`)
    expect(existsSync(out)).toBe(false)
    expect(existsSync(`${out}.tmp`)).toBe(false)
  })

  it('a CKKS client part that cannot be written takes the plan and its sidecar with it', () => {
    const out = path.join(tmp, 'ck.json')
    mkdirSync(path.join(tmp, 'ck.client.json'))
    const r = pic('compile', digits('cnn_square.onnx'), '--backend', 'ckks', '-o', out, '--quiet')
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`pic: error: cannot write ${path.join(tmp, 'ck.client.json')} (EISDIR)\n`)
    expect([existsSync(out), existsSync(path.join(tmp, 'ck.bin'))]).toEqual([false, false])
  })

  it('-o prints one line: the files written and their sizes', () => {
    const out = path.join(tmp, 'plan.json')
    const r = pic('compile', MLP, '--backend', 'ir', '-o', out, '--quiet')
    expect(r.code).toBe(0)
    const bin = path.join(tmp, 'plan.bin')
    expect(r.stdout).toBe(`wrote ${out} (${statSync(out).size} bytes), ${bin} (${statSync(bin).size} bytes)\n`)
  })
})

describe('EPIPE', () => {
  it('a reader that closes stdout early ends the command quietly, exit 0', async () => {
    // without the handler in cli.ts this exits 1 with "Error: write EPIPE" and a stack trace
    for (const args of [['compile', digits('resnet8.onnx'), '--backend', 'ir', '--json', '--quiet'], ['compile', digits('resnet8.onnx'), '--backend', 'ir', '--quiet']]) {
      const c = spawn(process.execPath, [path.join(ROOT, 'bin/pic.js'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
      c.stdout.destroy()
      let stderr = ''
      c.stderr.on('data', (d) => (stderr += d))
      const code = await new Promise<number | null>((resolve) => c.on('close', (k) => resolve(k)))
      expect(code).toBe(0)
      expect(stderr).toBe('')
    }
  })

  it('a closed stderr loses the messages, not the work or the exit code', async () => {
    const run = async (...args: string[]) => {
      const c = spawn(process.execPath, [path.join(ROOT, 'bin/pic.js'), ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] })
      c.stderr.destroy()
      return new Promise<number | null>((resolve) => c.on('close', (k) => resolve(k)))
    }
    const out = path.join(tmp, 'closed-stderr.json')
    expect(await run('compile', MLP, '--backend', 'ir', '-o', out)).toBe(0)
    expect(existsSync(out)).toBe(true)
    expect(await run('compile', MLP, '--backend', 'ir', '-o', '/nonexistent/x.json')).toBe(1)
  })
})

describe('NaN and infinities in inputs are refused by name and position before any work', () => {
  const nan = images('nan.npy', 3, (d) => (d[64 + 12] = NaN))
  const inf = images('inf.npy', 3, (d) => (d[5] = -Infinity))
  const nanMsg = `pic: error: ${nan}: element 76 (image 1, index 12) is NaN\n`
  const infMsg = `pic: error: ${inf}: element 5 (image 0, index 5) is infinite (-Infinity)\n`

  it('infer, eval and --calib', () => {
    expect(pic('infer', MLP, '--input', nan, '--output', path.join(tmp, 'y.npy'), '--quiet')).toMatchObject({ code: 1, stderr: nanMsg })
    expect(pic('eval', MLP, '--data', inf, '--labels', digits('test_y.npy'), '--quiet')).toMatchObject({ code: 1, stderr: infMsg })
    expect(pic('compile', MLP, '--backend', 'ir', '--approx', 'hermite:2', '--calib', nan, '--quiet')).toMatchObject({ code: 1, stderr: nanMsg })
  })

  it('run and query (mpc and ckks), before any connection', async () => {
    const plan = path.join(tmp, 'sq.json')
    const sched = path.join(tmp, 'sq-mpc.json')
    expect(pic('compile', digits('cnn_square.onnx'), '--backend', 'ckks', '-o', plan, '--quiet').code).toBe(0)
    expect(pic('compile', MLP, '--backend', 'mpc', '-o', sched, '--quiet').code).toBe(0)
    expect(pic('run', plan, '--input', nan, '--quiet')).toMatchObject({ code: 1, stderr: nanMsg })
    let connections = 0
    const srv = createServer((s) => {
      connections++
      s.destroy()
    })
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
    const at = `127.0.0.1:${(srv.address() as { port: number }).port}`
    expect(await picAsync('query', sched, '--connect', at, '--dealer', at, '--input', inf, '--quiet')).toMatchObject({ code: 1, stderr: infMsg })
    expect(await picAsync('query', path.join(tmp, 'sq.client.json'), '--connect', at, '--input', nan, '--quiet')).toMatchObject({ code: 1, stderr: nanMsg })
    srv.close()
    expect(connections).toBe(0)
  })

  it('int32 inputs are taken as their values (documented in the README and compiler/npy.ts)', () => {
    const round = (d: Float64Array) => d.forEach((v, i) => (d[i] = Math.round(v * 16)))
    const asInt = images('int.npy', 4, round, 'int32')
    const asFloat = images('int-as-float.npy', 4, round)
    expect(pic('infer', MLP, '--input', asInt, '--output', path.join(tmp, 'yi.npy'), '--quiet').code).toBe(0)
    expect(pic('infer', MLP, '--input', asFloat, '--output', path.join(tmp, 'yf.npy'), '--quiet').code).toBe(0)
    expect(readNpy(path.join(tmp, 'yi.npy')).data).toEqual(readNpy(path.join(tmp, 'yf.npy')).data)
  })
})

describe('fits that give NaN or infinities are refused at compile time', () => {
  it('hermite:100 on cnn_bn_relu_maxpool: the node, the fit and its degree', () => {
    // float64 throughout (--exact): the polynomial MaxPool's degree-100 sign reaches 1e117, the next ReLU's fit overflows
    const r = pic('compile', digits('cnn_bn_relu_maxpool.onnx'), '--backend', 'ir', '--approx', 'hermite:100', '--calib', CALIB, '--exact', '--quiet')
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(
      "pic: error: node '/act2/Relu' (Relu): the hermite fit of degree 100 gives NaN or infinite values on the calibration data (fitted on [-7.50, 9.45]; its input reaches |x| = 7.33e+116, after node '/pool1/MaxPool' (MaxPool) (hermite degree 100) reached |y| = 1.05e+117); use a lower degree or a fit over the calibrated range (chebyshev:D, minimax:D, ola)\n",
    )
    // eval compiles the same way, so it refuses too instead of reporting NaN logits with exit 0
    const e = pic('eval', digits('cnn_bn_relu_maxpool.onnx'), '--data', digits('test_x.npy'), '--labels', digits('test_y.npy'), '--approx', 'hermite:100', '--calib', CALIB, '--exact', '--quiet')
    expect([e.code, e.stderr]).toEqual([1, r.stderr])
  })
})

describe('fits with non-finite coefficients are refused', () => {
  it('a function that is NaN somewhere gives NaN coefficients: refused with the node and degree', () => {
    const g = runPipeline(importModel(readFileSync(MLP), { file: 'mlp_relu.onnx' }), common, passContext())
    const cx = passContext({}, { calib: readNpy(CALIB) })
    const nanAt = (x: Float64Array) => x.map((v) => (v > 0 ? NaN : 0))
    const acts = targets(g, false).map((a) => ({ ...a, fn: nanAt as typeof a.fn }))
    expect(() => fitActivations(g, cx, { method: 'chebyshev', degree: 6 }, acts)).toThrow(new PassError("node '/act1/Relu' (Relu): the chebyshev fit of degree 6 has NaN or infinite coefficients; use a lower degree"))
    // the same layers with the true function fit
    expect(fitActivations(g, cx, { method: 'chebyshev', degree: 6 }, targets(g, false)).layers).toHaveLength(1)
  })
})

describe('ignored or contradictory options', () => {
  it.each([
    [['compile', MLP, '--backend', 'mpc', '--approx-relu'], 'pic: error: --approx-relu approximates ReLUs with the --approx fit: give --approx SPEC --calib C.npy too'],
    [['compile', MLP, '--backend', 'mpc', '--approx', 'hermite:2', '--calib', CALIB, '--approx-relu', '--keep-relu'], 'pic: error: --approx-relu and --keep-relu contradict each other: give one'],
    [['compile', MLP, '--backend', 'mpc', '--security', '128'], 'pic: error: --security is for --backend ckks; --backend mpc does not use it'],
    [['compile', MLP, '--backend', 'ckks', '--truncation-limit', '2^-20'], 'pic: error: --truncation-limit is for --backend mpc; --backend ckks does not use it'],
    [['compile', MLP, '--backend', 'ckks', '--approx', 'hermite:2', '--calib', CALIB, '--approx-relu'], 'pic: error: --approx-relu is for --backend mpc; --backend ckks does not use it'],
    [
      ['compile', MLP, '--backend', 'ckks', '--approx', 'hermite:2', '--calib', CALIB, '--keep-relu'],
      'pic: error: --keep-relu keeps ReLUs exact for garbled circuits, which --backend ckks cannot evaluate: drop it (CKKS approximates every activation under --approx)',
    ],
  ])('pic %j', (args, message) => {
    const r = pic(...args)
    expect(r.code).toBe(2)
    expect(oneLine(r.stderr)).toBe(message)
  })

  it('--approx with mpc that approximates nothing says why', () => {
    const r = pic('compile', MLP, '--backend', 'mpc', '--approx', 'hermite:2', '--calib', CALIB, '--json')
    expect(r.code).toBe(0)
    expect(r.stderr).toContain('pic: note: --approx hermite:2 approximated no activation: ReLU and MaxPool stay exact (garbled circuits); add --approx-relu to approximate them too\n')
    // a model with other activations: they are approximated, ReLUs kept, and no note
    const s = pic('compile', digits('mlp_sigmoid_tanh.onnx'), '--backend', 'mpc', '--approx', 'hermite:4', '--calib', CALIB, '--json')
    expect(s.code).toBe(0)
    expect(s.stderr).not.toContain('approximated no activation')
  })

  it('pic run without --output says the outputs are not written', async () => {
    const plan = path.join(tmp, 'sq1.json')
    expect(pic('compile', digits('cnn_square.onnx'), '--backend', 'ckks', '-o', plan, '--quiet').code).toBe(0)
    const r = await picAsync('run', plan, '--input', images('x1.npy', 1))
    expect(r.code).toBe(0)
    expect(r.stderr).toContain('pic: note: no --output: the decrypted outputs are not written, only the summary\n')
  }, 300_000)

  it('serve with a schedule compiled with other options says which options must match', async () => {
    const sched = path.join(tmp, 'relu-poly.json')
    const model = digits('cnn_bn_relu_maxpool.onnx')
    expect(pic('compile', model, '--backend', 'mpc', '--approx', 'hermite:2', '--approx-relu', '--calib', CALIB, '-o', sched, '--quiet').code).toBe(0)
    const r = await picAsync('serve', model, '--schedule', sched, '--port', '0', '--dealer', '127.0.0.1:1', '--approx', 'hermite:2', '--calib', CALIB, '--once', '--quiet')
    expect(r.code).toBe(1)
    expect(r.stderr.split('\n').filter((l) => l.startsWith('pic: error: '))).toEqual([
      `pic: error: ${sched}: the schedule does not match ${model} as compiled now: pic serve compiles the model again and needs the options the schedule was compiled with (--approx and --calib, --approx-relu, --keep-relu, --relu-budget, --maxpool); its ReLUs are polynomials (compiled with --approx-relu), this serve has no --approx-relu`,
    ])
  })
})
