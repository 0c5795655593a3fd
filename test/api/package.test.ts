/**
 * The package as a user gets it: `npm pack` (of the built dist/), installed into an empty project,
 * then `npx pic --version` and the two example scripts run there, importing the package by name.
 *
 * Install: first `npm install --offline TARBALL` (what a user types, from this machine's npm cache);
 * where the cache cannot resolve the dependencies' metadata, `npm ci --prefer-offline` with a
 * lockfile pinning the tarball and the repository's own locked runtime dependencies (their tarballs
 * come from the cache, else the registry: CI reaches it).
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ROOT } from '../helpers.js'
import { plainOracle } from './oracle.js'

const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
const dir = mkdtempSync(path.join(tmpdir(), 'pic-pack-'))
const project = path.join(dir, 'project')
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function sh(cmd: string, args: string[], cwd: string, timeout = 120_000) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, npm_config_update_notifier: 'false', PIC_STATE_DIR: path.join(dir, 'state') } })
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' }
}

/** A lockfile for `project` pinning the tarball and the repository's locked non-dev packages. */
function lockfile(tarball: string, spec: string): string {
  const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'))
  const packages: Record<string, unknown> = {
    '': { name: 'project', version: '1.0.0', dependencies: { [pkg.name]: spec } },
    [`node_modules/${pkg.name}`]: {
      version: pkg.version,
      resolved: spec,
      integrity: `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`,
      license: pkg.license,
      dependencies: pkg.dependencies,
      optionalDependencies: pkg.optionalDependencies,
      bin: pkg.bin,
      engines: pkg.engines,
    },
  }
  for (const [k, v] of Object.entries(lock.packages as Record<string, { dev?: boolean }>)) if (k !== '' && !v.dev) packages[k] = v
  return JSON.stringify({ name: 'project', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2)
}

describe('npm pack and install into an empty project', () => {
  let tarball = ''

  it('packs only what the package needs', () => {
    const r = sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT)
    expect(r.code, r.stderr).toBe(0)
    const info = JSON.parse(r.stdout)[0] as { filename: string; files: { path: string }[] }
    tarball = path.join(dir, info.filename)
    const files = info.files.map((f) => f.path)
    expect(files).toContain('dist/index.js')
    expect(files).toContain('dist/index.d.ts')
    expect(files).toContain('bin/pic.js')
    expect(files).toContain('backends/ckks/op-costs.json')
    for (const f of ['examples/ckks.mjs', 'examples/mpc.mjs', 'examples/plugin-backend.js', 'examples/cnn_square.onnx']) expect(files).toContain(f)
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('dist/test/') || f.startsWith('dist/bench/') || f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([])
  })

  it('installs, and runs the CLI and both example scripts', () => {
    mkdirSync(project)
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'project', version: '1.0.0', private: true, type: 'module' }))
    let r = sh('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], project)
    let how = 'npm install --offline TARBALL'
    if (r.code !== 0) {
      how = 'npm ci --prefer-offline with a lockfile (the cache lacks the dependencies\' metadata)'
      // the cache holds the dependencies' tarballs but not their metadata: install from a lockfile
      const spec = `file:../${path.basename(tarball)}`
      writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'project', version: '1.0.0', private: true, type: 'module', dependencies: { [pkg.name]: spec } }))
      writeFileSync(path.join(project, 'package-lock.json'), lockfile(tarball, spec))
      r = sh('npm', ['ci', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund'], project)
    }
    expect(r.code, r.stderr).toBe(0)
    console.log(`installed with ${how}`)

    const v = sh('npx', ['--no', '--', 'pic', '--version'], project)
    expect(v.code, v.stderr).toBe(0)
    expect(v.stdout).toBe(`pic ${pkg.version}\n`)

    // the example scripts as a user's own: copied into the project with their data
    const examples = path.join(project, 'node_modules', ...pkg.name.split('/'), 'examples')
    for (const f of readdirSync(examples)) copyFileSync(path.join(examples, f), path.join(project, f))
    const { images, correct } = plainOracle()
    const ckks = sh(process.execPath, ['ckks.mjs'], project)
    expect(ckks.code, ckks.stderr).toBe(0)
    expect(ckks.stdout).toMatch(new RegExp(`^CKKS logN \\d+: ${correct}/${images} correct \\([\\d.]+%\\), \\d+ ms per image\n$`))
    const mpc = sh(process.execPath, ['mpc.mjs'], project)
    expect(mpc.code, mpc.stderr).toBe(0)
    expect(mpc.stdout).toMatch(new RegExp(`^MPC: ${correct}/${images} correct, \\d+ B online per image, \\d+ ms per image\n$`))

    // TypeScript users get the types through `exports` (this repository's tsc and @types/node)
    const typed = [
      "import { compile, importModel, runPlan, type Backend, type CkksCompiled } from '@pic-compiler/pic'",
      "const g = importModel(new Uint8Array(0), { file: 'm.onnx' })",
      "const c: CkksCompiled = await compile(g, 'ckks', { approx: 'none' })",
      'const logN: number = c.runnable.params.logN',
      "const b: Backend<{ n: number }> = { name: 'n', doc: '', pipeline: () => [], lower: (h) => ({ plan: { n: h.nodes.length } }), print: (p) => String(p.n), summary: (p) => ({ n: p.n }) }",
      'const n: number = (await compile(g, b)).plan.n',
      'export const used = [logN, n, runPlan]',
    ]
    writeFileSync(path.join(project, 'typed.ts'), typed.join('\n') + '\n')
    writeFileSync(path.join(project, 'mistyped.ts'), typed.join('\n').replace('const logN: number', 'const logN: string') + '\n')
    // one run over both: the only error is the planted one
    const tsc = sh(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', '--typeRoots', path.join(ROOT, 'node_modules/@types'), '--types', 'node', 'typed.ts', 'mistyped.ts'], project)
    expect(tsc.stdout).toBe("mistyped.ts(4,7): error TS2322: Type 'number' is not assignable to type 'string'.\n")

    // the plugin, from the installed package, through the installed CLI
    const plug = sh('npx', ['--no', '--', 'pic', 'compile', 'cnn_square.onnx', '--backend', './plugin-backend.js', '--json'], project)
    expect(plug.code, plug.stderr).toBe(0)
    expect(JSON.parse(plug.stdout)).toMatchObject({ backend: 'cost-report', depth: 2 })
  })
})
