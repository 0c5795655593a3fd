/**
 * What crosses the wire: a recording proxy between client and server shows that the client's input
 * never leaves the client in any encoding, and that neither the ONNX weights nor their fixed-point
 * form reach the client.
 */
import { createServer, connect, type Server } from 'node:net'
import { describe, expect, it } from 'vitest'
import { lowerMpc, runQuery } from '../../../backends/mpc/index.js'
import { encode } from '../../../backends/mpc/ring.js'
import { prepareServer } from '../../../backends/mpc/party.js'
import type { Tensor } from '../../../ir/tensor.js'
import { argmax, compiled, images, loadModel, parties } from './helpers.js'

interface Recording {
  up: Buffer[]
  down: Buffer[]
}

function proxy(targetPort: number): Promise<{ port: number; rec: Recording; srv: Server }> {
  const rec: Recording = { up: [], down: [] }
  return new Promise((resolve) => {
    const srv = createServer((c) => {
      const t = connect(targetPort, '127.0.0.1')
      c.on('data', (d) => {
        rec.up.push(Buffer.from(d))
        t.write(d)
      })
      t.on('data', (d) => {
        rec.down.push(Buffer.from(d))
        c.write(d)
      })
      c.on('close', () => t.destroy())
      t.on('close', () => c.destroy())
      c.on('error', () => t.destroy())
      t.on('error', () => c.destroy())
    })
    srv.listen(0, '127.0.0.1', () => resolve({ port: (srv.address() as { port: number }).port, rec, srv }))
  })
}

/** The first pattern (each at least 2 bytes) found anywhere in `hay`, in one pass over it. */
function findAny(hay: Buffer, patterns: Buffer[]): Buffer | undefined {
  const byPrefix = new Map<number, Buffer[]>()
  for (const p of patterns) {
    const k = p.readUInt16LE(0)
    byPrefix.set(k, [...(byPrefix.get(k) ?? []), p])
  }
  const seen = new Uint8Array(65536)
  for (const k of byPrefix.keys()) seen[k] = 1
  for (let i = 0; i + 2 <= hay.length; i++) {
    const k = hay[i] | (hay[i + 1] << 8)
    if (!seen[k]) continue
    for (const p of byPrefix.get(k)!) if (i + p.length <= hay.length && hay.compare(p, 0, p.length, i, i + p.length) === 0) return p
  }
  return undefined
}

function u64(v: bigint): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64LE(BigInt.asUintN(64, v))
  return b
}

describe('bytes on the wire', () => {
  it('carry neither the client input nor the weights', async () => {
    const name = 'cnn_bn_relu_maxpool'
    const g = compiled(name)
    const s = lowerMpc(g)
    const p = await parties(g, s)
    const px = await proxy(p.server.port)
    try {
      const { x, ref } = images(2, 40)
      const { output } = await runQuery(s, x, { connect: `127.0.0.1:${px.port}`, dealer: `127.0.0.1:${p.dealer.port}` })
      expect(argmax(output.data, 0, 10)).toBe(argmax(ref(name).data, 40 * 10, 10))
      const up = Buffer.concat(px.rec.up)
      const down = Buffer.concat(px.rec.down)
      expect(up.length).toBeGreaterThan(1000)
      expect(down.length).toBeGreaterThan(100_000)

      const f = s.params.fracBits
      const pixels = Array.from(x.data).filter((v) => v > 0.05)
      expect(pixels.length).toBeGreaterThan(20)
      const inputPatterns: Buffer[] = []
      for (const v of pixels) {
        inputPatterns.push(u64(encode(v, f)))
        const d = Buffer.alloc(8)
        d.writeDoubleLE(v)
        inputPatterns.push(d)
      }
      const f32 = Buffer.from(new Float32Array(x.data).buffer)
      for (let i = 0; i + 12 <= f32.length; i += 4) if (f32.readFloatLE(i) !== 0) inputPatterns.push(f32.subarray(i, i + 12))
      expect(findAny(up, [Buffer.from('nothing here'), Buffer.from(s.fingerprint)])).toEqual(Buffer.from(s.fingerprint))
      expect(findAny(up, inputPatterns)).toBeUndefined()
      expect(findAny(down, inputPatterns)).toBeUndefined()

      const weights: Tensor[] = loadModel(name)
        .nodes.filter((n) => n.op === 'Constant')
        .map((n) => (n.attrs as { value: Tensor }).value)
        .filter((t) => t.data.length >= 16)
      expect(weights.length).toBeGreaterThan(3)
      const weightPatterns: Buffer[] = []
      for (const w of weights) {
        const b32 = Buffer.from(new Float32Array(w.data).buffer)
        for (let i = 0; i + 12 <= b32.length; i += 4) weightPatterns.push(b32.subarray(i, i + 12))
      }
      const model = prepareServer(g, s)
      let checked = 0
      for (const op of model.operators)
        for (const t of op.terms)
          for (const p of t.prims) {
            if (p.kind !== 'conv' && p.kind !== 'dense') continue
            for (const q of p.weight)
              if (Math.abs(q) > 4096) {
                checked++
                weightPatterns.push(u64(BigInt(q)))
              }
          }
      expect(findAny(down, weightPatterns)).toBeUndefined()
      expect(checked).toBeGreaterThan(100)
    } finally {
      px.srv.close()
      await p.close()
    }
  })
})
