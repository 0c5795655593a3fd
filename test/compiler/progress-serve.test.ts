/**
 * Progress on stderr of pic serve (start-up, before it listens) and pic query (key generation, per
 * image) with both backends (progress.test.ts has the other commands). Each command: the lines appear on stderr,
 * none with --quiet, and with --json stdout is exactly one JSON object. Per-image lines come at most
 * once a second, the first after two seconds and none for the last image, so the runs here take a
 * few seconds: 12 CKKS images, 100 mpc images.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { encodeNpy, readNpy } from '../../compiler/npy.js'
import { background, pic, picAsync, ROOT, started } from '../helpers.js'
import { lineOf, pureJSON } from './progress-util.js'

const tmp = mkdtempSync(path.join(tmpdir(), 'pic-progress-serve-'))
const fx = (...p: string[]) => path.join(ROOT, 'test', 'fixtures', ...p)
const xs = path.join(tmp, 'x.npy')
const xm = path.join(tmp, 'x100.npy')
const plan = path.join(tmp, 'cnn.json')
const model = fx('digits', 'cnn_square.onnx')

beforeAll(() => {
  const x = readNpy(fx('digits', 'test_x.npy'))
  writeFileSync(xs, encodeNpy({ dtype: x.dtype, shape: [12, 1, 8, 8], data: x.data.slice(0, 12 * 64) }))
  writeFileSync(xm, encodeNpy({ dtype: x.dtype, shape: [100, 1, 8, 8], data: x.data.slice(0, 100 * 64) }))
  expect(pic('compile', model, '--backend', 'ckks', '-o', plan, '--quiet').code).toBe(0)
})
afterAll(() => {
  for (const c of started) c.kill()
})

describe('progress on stderr: serve and query', () => {
  it('pic serve and pic query (CKKS): start-up before listening, key generation and image i/n', async () => {
    const server = await background('serve', model, '--plan', plan, '--port', '0', '--max-sessions', '2')
    const s = server.stderr()
    const listening = lineOf(s, /listening on/)
    expect(lineOf(s, /^pic: loading the plan .+ and its constants\.\.\.$/)).toBeLessThan(listening)
    expect(lineOf(s, /^pic: preparing the server: \d+ constant\(s\), .+, \d+ instructions per inference\.\.\.$/)).toBeLessThan(listening)
    const client = plan.replace(/\.json$/, '.client.json')
    const args = ['query', client, '--connect', `127.0.0.1:${server.port}`, '--server-fingerprint', server.fingerprint!, '--input', xs, '--json']
    const r = await picAsync(...args)
    expect(r.code).toBe(0)
    pureJSON(r.stdout)
    const gen = lineOf(r.stderr, /^pic: generating keys: \d+ rotation key\(s\) \+ relinearization at logN \d+\.\.\.$/)
    expect(lineOf(r.stderr, /^pic: image \d+\/12$/)).toBeGreaterThan(gen)
    const q = await picAsync(...args, '--quiet')
    expect(q.code).toBe(0)
    expect(q.stderr).toBe('')
    pureJSON(q.stdout)
    server.child.kill()
    await server.exit
  })

  it('pic serve and pic query (mpc): start-up before listening, image i/n', async () => {
    const m = fx('digits', 'cnn_bn_relu_maxpool.onnx')
    const sched = path.join(tmp, 'sched.json')
    expect(pic('compile', m, '--backend', 'mpc', '-o', sched, '--quiet').code).toBe(0)
    const dealer = await background('dealer', '--port', '0')
    const server = await background('serve', m, '--schedule', sched, '--port', '0', '--dealer', `127.0.0.1:${dealer.port}`, '--dealer-fingerprint', dealer.fingerprint!)
    const s = server.stderr()
    const listening = lineOf(s, /listening on/)
    expect(lineOf(s, /^pic: compiling .+ again \(the server holds the weights; the schedule fixes the protocol\)\.\.\.$/)).toBeLessThan(listening)
    expect(lineOf(s, /^pic: preparing \d+ linear operator\(s\) in the ring/)).toBeLessThan(listening)
    const args = ['query', sched, '--connect', `127.0.0.1:${server.port}`, '--server-fingerprint', server.fingerprint!, '--dealer', `127.0.0.1:${dealer.port}`, '--dealer-fingerprint', dealer.fingerprint!, '--input', xm, '--json']
    const r = await picAsync(...args)
    expect(r.code).toBe(0)
    pureJSON(r.stdout)
    lineOf(r.stderr, /^pic: image \d+\/100$/)
    const q = await picAsync(...args, '--quiet')
    expect(q.code).toBe(0)
    expect(q.stderr).toBe('')
    pureJSON(q.stdout)
    server.child.kill()
    dealer.child.kill()
    await Promise.all([server.exit, dealer.exit])
  })

})
