/**
 * `pic compile --backend ckks -o plan.json` writes plan.client.json; `pic serve MODEL --plan plan.json`
 * and `pic query plan.client.json --connect ... --json` run an encrypted query in two processes over
 * TCP on loopback, with the report MPC's query gives (images, bytes, latencyMs); the client file
 * holds no weight bytes.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { encodeNpy, readNpy } from '../../compiler/npy.js'
import { argmax } from '../../passes/ola.js'
import { background, maxAbsDiff, pic, picAsync, ROOT, started } from '../helpers.js'

const tmp = mkdtempSync(path.join(tmpdir(), 'pic-ckks-'))
const fx = (...p: string[]) => path.join(ROOT, 'test', 'fixtures', ...p)
afterAll(() => {
  for (const c of started) c.kill()
})

describe('pic serve --plan / pic query with a CKKS plan', () => {
  it('compiles, serves and queries cnn_square in two processes', async () => {
    const model = fx('digits', 'cnn_square.onnx')
    const plan = path.join(tmp, 'cnn.json')
    const c = pic('compile', model, '--backend', 'ckks', '-o', plan, '--quiet')
    expect(c.stderr).toBe('')
    expect(c.code).toBe(0)
    const clientFile = path.join(tmp, 'cnn.client.json')
    const part = JSON.parse(readFileSync(clientFile, 'utf8'))
    expect(part.format).toBe('pic-ckks-client')
    expect(Object.keys(part).sort()).toEqual(['batching', 'constants', 'fingerprint', 'format', 'inputs', 'keys', 'model', 'outputs', 'params', 'planDigest', 'refreshes', 'version'])
    // no weight: the sidecar's float64 constants (every 8-byte word sampled) do not occur in the client file
    const bin = readFileSync(plan.replace(/\.json$/, '.bin'))
    const p = JSON.parse(readFileSync(plan, 'utf8'))
    const text = readFileSync(clientFile)
    const raw = Buffer.concat([text, ...Object.values(part.constants as Record<string, { data: string }>).map((k) => Buffer.from(k.data, 'base64'))])
    const consts = bin.subarray(p.sidecar.graphBytes)
    let probes = 0
    for (const cst of Object.values(p.constants as Record<string, { values?: { offset: number; count: number } }>)) {
      if (!cst.values) continue
      for (let i = 0; i < cst.values.count; i += Math.max(1, Math.floor(cst.values.count / 8))) {
        const w = consts.subarray(cst.values.offset + 8 * i, cst.values.offset + 8 * i + 8)
        const v = w.readDoubleLE(0)
        if (v === 0 || Math.abs(v) === 1) continue
        probes++
        expect(raw.includes(w)).toBe(false)
        expect(text.includes(Buffer.from(String(v)))).toBe(false)
      }
    }
    expect(probes).toBeGreaterThan(20)

    const x = readNpy(fx('digits', 'test_x.npy'))
    const xs = path.join(tmp, 'x.npy')
    writeFileSync(xs, encodeNpy({ dtype: x.dtype, shape: [2, 1, 8, 8], data: x.data.slice(0, 128) }))
    const server = await background('serve', model, '--plan', plan, '--port', '0', '--once')
    const ys = path.join(tmp, 'y.npy')
    const r = await picAsync('query', clientFile, '--connect', `127.0.0.1:${server.port}`, '--input', xs, '--output', ys, '--json', '--quiet')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({ backend: 'ckks', images: 2 })
    expect(out.bytes.keys.total).toBeGreaterThan(0)
    expect(out.bytes.perImage.up).toBeGreaterThan(0)
    expect(out.bytes.perImage.down).toBeGreaterThan(0)
    expect(out.latencyMs.perImage).toBeGreaterThan(0)
    expect(await server.exit).toBe(0)
    const y = readNpy(ys)
    const ref = readNpy(fx('digits', 'ref_cnn_square.npy'))
    expect(maxAbsDiff(y.data, ref.data.subarray(0, 20))).toBeLessThanOrEqual(0.05)
    expect(Array.from(argmax(y))).toEqual(Array.from(argmax({ ...ref, shape: [2, 10], data: ref.data.subarray(0, 20) })))
  }, 300_000)

  it('refuses a client part that was edited', () => {
    const f = path.join(tmp, 'edited.client.json')
    const part = JSON.parse(readFileSync(path.join(tmp, 'cnn.client.json'), 'utf8'))
    part.keys.rotations.push(3)
    writeFileSync(f, JSON.stringify(part))
    const r = pic('query', f, '--connect', '127.0.0.1:1', '--input', fx('digits', 'test_x.npy'), '--quiet')
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`pic: error: ${f}: the client part does not match its fingerprint (edited or truncated)\n`)
  })
})
