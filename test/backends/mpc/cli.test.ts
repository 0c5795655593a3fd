/**
 * The mpc commands end to end from the built CLI: compile --backend mpc --json, then dealer, serve
 * --once and query --json as three processes over loopback TLS, each peer pinned by the fingerprint
 * its process printed; a bad schedule is one error line.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { encodeNpy, readNpy } from '../../../compiler/npy.js'
import { background, digits, pic, picAsync, started } from '../../helpers.js'

const tmp = mkdtempSync(path.join(tmpdir(), 'pic-mpc-'))
afterAll(() => {
  for (const c of started) if (c.exitCode === null) c.kill()
})

describe('pic dealer / serve / query', () => {
  it('compile --json reports the per-inference costs', () => {
    const r = pic('compile', digits('senet_partial_relu.onnx'), '--backend', 'mpc', '--json', '--quiet')
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out).toMatchObject({ backend: 'mpc', reluCount: 333, triples: 0, rounds: 6 })
    expect(Object.keys(out.latencyMs)).toEqual(['LAN', 'WAN'])
    expect(out.bytes.online).toBeGreaterThan(0)
    expect(out.layers.length).toBe(4)
  })

  it('runs a two-party query over TCP and reports bytes and rounds per image', async () => {
    const model = digits('cnn_bn_relu_maxpool.onnx')
    const sched = path.join(tmp, 'cnn.json')
    expect(pic('compile', model, '--backend', 'mpc', '-o', sched, '--quiet').code).toBe(0)
    const x = readNpy(digits('test_x.npy'))
    const xs = path.join(tmp, 'x.npy')
    writeFileSync(xs, encodeNpy({ dtype: 'float32', shape: [2, 1, 8, 8], data: x.data.slice(0, 128) }))
    const dealer = await background('dealer', '--port', '0')
    expect(dealer.fingerprint).toMatch(/^[0-9a-f]{64}$/)
    const server = await background('serve', model, '--schedule', sched, '--port', '0', '--dealer', `127.0.0.1:${dealer.port}`, '--dealer-fingerprint', dealer.fingerprint!, '--once')
    expect(server.fingerprint).toMatch(/^[0-9a-f]{64}$/)
    const ys = path.join(tmp, 'y.npy')
    const r = await picAsync(
      'query', sched, '--connect', `127.0.0.1:${server.port}`, '--server-fingerprint', server.fingerprint!,
      '--dealer', `127.0.0.1:${dealer.port}`, '--dealer-fingerprint', dealer.fingerprint!, '--input', xs, '--output', ys, '--json',
    )
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.images).toBe(2)
    expect(out.perImage.rounds).toBe(6)
    expect(out.perImage.bytes.online).toBe(out.predicted.bytes.online)
    expect(out.bytes.online).toBe(2 * out.perImage.bytes.online)
    const y = readNpy(ys)
    const ref = readNpy(digits('ref_cnn_bn_relu_maxpool.npy'))
    for (let i = 0; i < 20; i++) expect(Math.abs(y.data[i] - ref.data[i])).toBeLessThan(0.05)
    expect(await server.exit).toBe(0)
    dealer.child.kill()
    await dealer.exit
  })

  it('without --dealer, serve and query run the offline phase between themselves (HE and OT) and report it', { timeout: 120_000 }, async () => {
    const model = digits('mlp_relu.onnx')
    const sched = path.join(tmp, 'mlp.json')
    expect(pic('compile', model, '--backend', 'mpc', '-o', sched, '--quiet').code).toBe(0)
    const x = readNpy(digits('test_x.npy'))
    const xs = path.join(tmp, 'x3.npy')
    writeFileSync(xs, encodeNpy({ dtype: 'float32', shape: [3, 1, 8, 8], data: x.data.slice(0, 192) }))
    const server = await background('serve', model, '--schedule', sched, '--port', '0', '--once')
    expect(server.stderr()).toContain('offline phase: two-party (no dealer)')
    const ys = path.join(tmp, 'y3.npy')
    const r = await picAsync('query', sched, '--connect', `127.0.0.1:${server.port}`, '--server-fingerprint', server.fingerprint!, '--input', xs, '--output', ys, '--json')
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.offline).toBe('two-party')
    expect(out.perImage.bytes.online).toBe(out.predicted.bytes.online)
    expect(out.perImage.bytes.offline).toBe(out.predicted.bytes.offline)
    expect(out.latencyMs.offlinePerImage).toBeGreaterThan(0)
    const y = readNpy(ys)
    const ref = readNpy(digits('ref_mlp_relu.npy'))
    for (let i = 0; i < 30; i++) expect(Math.abs(y.data[i] - ref.data[i])).toBeLessThan(0.05)
    expect(await server.exit).toBe(0)
  })

  it('keeps the certificate across restarts; --insecure-plaintext runs and warns on every start', async () => {
    const state = path.join(tmp, 'state')
    const first = await background('dealer', '--port', '0', '--state-dir', state)
    first.child.kill()
    await first.exit
    const again = await background('dealer', '--port', '0', '--state-dir', state)
    again.child.kill()
    await again.exit
    expect(again.fingerprint).toMatch(/^[0-9a-f]{64}$/)
    expect(again.fingerprint).toBe(first.fingerprint)

    const model = digits('mlp_relu.onnx')
    const sched = path.join(tmp, 'mlp.json')
    expect(pic('compile', model, '--backend', 'mpc', '-o', sched, '--quiet').code).toBe(0)
    const xs = path.join(tmp, 'x1.npy')
    writeFileSync(xs, encodeNpy({ dtype: 'float32', shape: [1, 1, 8, 8], data: readNpy(digits('test_x.npy')).data.slice(0, 64) }))
    const warn = /pic: warning: --insecure-plaintext: the (dealer|server|client)'s links are plain TCP, neither encrypted nor authenticated \(for debugging only\)\n/
    const dealer = await background('dealer', '--port', '0', '--insecure-plaintext')
    const server = await background('serve', model, '--schedule', sched, '--port', '0', '--dealer', `127.0.0.1:${dealer.port}`, '--once', '--insecure-plaintext')
    expect(dealer.fingerprint).toBeUndefined()
    expect(dealer.stderr()).toMatch(warn)
    expect(server.stderr()).toMatch(warn)
    const r = await picAsync('query', sched, '--connect', `127.0.0.1:${server.port}`, '--dealer', `127.0.0.1:${dealer.port}`, '--input', xs, '--json', '--quiet', '--insecure-plaintext')
    expect(r.code).toBe(0)
    expect(r.stderr).toMatch(new RegExp(`^${warn.source}$`)) // even with --quiet
    expect(await server.exit).toBe(0)
    dealer.child.kill()
    await dealer.exit
  })

  it('refuses a file that is not a schedule with one error line', () => {
    const bad = path.join(tmp, 'bad.json')
    writeFileSync(bad, '{"format":"something-else"}')
    const r = pic('query', bad, '--connect', '127.0.0.1:1', '--dealer', '127.0.0.1:1', '--input', digits('test_x.npy'))
    expect(r.code).toBe(1)
    expect(r.stderr).toBe(`pic: error: ${bad}: not an mpc schedule (compile one with 'pic compile MODEL --backend mpc -o FILE')\n`)
  })
})
