#!/usr/bin/env node
// What the release workflow (.github/workflows/release.yml) asks of the
// repository, so that one place owns each fact:
//
//   node scripts/release.mjs check v0.1.0
//     The tag must be `v` + package.json's version, which must equal the chart's
//     version and appVersion. Prints `version=…`, `image_name=…` lines for
//     $GITHUB_OUTPUT; exits 1 saying what to change otherwise.
//   node scripts/release.mjs chart-image ghcr.io/acme/oz-worker
//     Sets the chart's default image.repository (k8s/chart/oz-worker/values.yaml,
//     comments kept) to the image the workflow pushed, before `helm package`, so
//     the published chart names the published image with its appVersion tag.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';

const ROOT = process.env.OZ_RELEASE_ROOT || fileURLToPath(new URL('..', import.meta.url));
const CHART = join(ROOT, 'k8s/chart/oz-worker');

const fail = (message) => {
  process.stderr.write(`release: ${message}\n`);
  process.exit(1);
};

/** The name the chart's default image.repository ends in: the image the Dockerfile builds. */
export function imageName(valuesText) {
  const repository = parseDocument(valuesText).getIn(['image', 'repository']);
  return String(repository).split('/').at(-1);
}

const [command, argument] = process.argv.slice(2);
if (command === 'check') {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const chart = parseDocument(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')).toJS();
  if (argument !== `v${version}`) fail(`tag ${argument} does not name package.json's version ${version}: tag v${version}, or bump the version first`);
  if (String(chart.appVersion) !== version || String(chart.version) !== version) {
    fail(`k8s/chart/oz-worker/Chart.yaml has version ${chart.version} and appVersion ${chart.appVersion}; set both to ${version}, package.json's version`);
  }
  process.stdout.write(`version=${version}\nimage_name=${imageName(readFileSync(join(CHART, 'values.yaml'), 'utf8'))}\n`);
} else if (command === 'chart-image') {
  if (!argument || /\s|:/.test(argument.split('/').at(-1))) fail('chart-image takes an image repository without a tag, e.g. ghcr.io/acme/oz-worker');
  const path = join(CHART, 'values.yaml');
  const document = parseDocument(readFileSync(path, 'utf8'));
  if (document.getIn(['image', 'repository']) === undefined) fail(`${path} has no image.repository`);
  document.setIn(['image', 'repository'], argument);
  writeFileSync(path, String(document));
  process.stdout.write(`release: the chart's default image is ${argument}\n`);
} else {
  fail('usage: node scripts/release.mjs check <tag> | chart-image <repository>');
}
