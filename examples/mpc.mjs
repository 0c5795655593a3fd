// Compile the digits CNN for two-party MPC, then run the server (holds the weights) and the client
// (holds the images) in this one process over TLS on loopback; they make the offline correlations
// themselves (HE and OT: no dealer; pass `dealer: 'HOST:PORT'` to both for a trusted dealer, startMpcDealer).
// Run: node examples/mpc.mjs
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { compile, importModel, queryMpc, readNpy, startMpcServer } from '@pic-compiler/pic'

const here = (name) => fileURLToPath(new URL(name, import.meta.url))
const model = importModel(readFileSync(here('cnn_square.onnx')), { file: 'cnn_square.onnx' })
const images = readNpy(here('digits_x.npy'))
const labels = readNpy(here('digits_y.npy'))

const { graph, plan: schedule } = await compile(model, 'mpc', { calib: readNpy(here('digits_calib.npy')) })
const server = await startMpcServer(graph, schedule, { port: 0 }) // port 0: any free port
const { output, report } = await queryMpc(schedule, images, { connect: `127.0.0.1:${server.port}`, serverTrust: { fingerprint: server.fingerprint } })
await server.close()
const argmax = (i) => output.data.subarray(10 * i, 10 * i + 10).reduce((b, v, k, row) => (v > row[b] ? k : b), 0)
let correct = 0
for (let i = 0; i < labels.shape[0]; i++) if (argmax(i) === labels.data[i]) correct++
console.log(`MPC: ${correct}/${labels.shape[0]} correct, ${report.perImage.bytes.online} B online per image, ${report.latencyMs.perImage.toFixed(0)} ms per image`)
