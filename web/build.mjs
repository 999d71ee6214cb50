// Bundles the dashboard into OUT (default ../build/web): OUT/index.html and OUT/assets/ with
// content-hashed names, which the coordinator serves as immutable. Everything comes from
// node_modules (installed by `npm ci` from package-lock.json); nothing is fetched.
//   node build.mjs [OUT]        (TV_WEB_DEV=1: not minified, for reading a stack trace)
import { build } from 'esbuild';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] || join(here, '..', 'build', 'web'));
const assets = join(out, 'assets');

await rm(assets, { recursive: true, force: true });
await mkdir(assets, { recursive: true });
const result = await build({
  entryPoints: [join(here, 'src', 'main.js')],
  bundle: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  minify: !process.env.TV_WEB_DEV,
  sourcemap: false,
  outdir: assets,
  entryNames: 'app-[hash]',
  metafile: true,
  logLevel: 'warning',
  legalComments: 'none',
});
const names = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = names.find((n) => n.endsWith('.js'));
const css = names.find((n) => n.endsWith('.css'));
if (!js || !css) throw new Error(`esbuild wrote ${names.join(', ')}: expected one .js and one .css`);
const page = (await readFile(join(here, 'index.html'), 'utf8')).replace('{{js}}', js).replace('{{css}}', css);
await writeFile(join(out, 'index.html'), page);
console.log(`web: ${out}/index.html, assets/${js}, assets/${css}`);
