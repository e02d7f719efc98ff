import { parseComponentRef } from '../../domain/artifact-ref.js';
import { createHash, createPublicKey } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { fileBodyStream } from '../../api-client.js';
import { ARTIFACT_KINDS, type ArtifactKind } from '../../domain/protocol.js';
import { isSemver } from '../../domain/semver.js';
import { signArtifact } from '../../signing.js';
import type { ArtifactView } from '../../store/artifacts.js';
import { action, clientFor } from '../context.js';
import { printJson, printRows } from '../output.js';

const enc = encodeURIComponent;

const columns: [string, (a: ArtifactView) => unknown][] = [
  ['COMPONENT', (a) => a.component],
  ['VERSION', (a) => a.version],
  ['KIND', (a) => a.kind],
  ['LIFECYCLE', (a) => a.lifecycle],
  ['SIZE', (a) => a.size],
  ['SIGNED', (a) => (a.key_id ? `key ${a.key_id}` : a.signature ? 'yes' : 'no')],
  ['DISRUPTIVE', (a) => a.disruptive],
  // Older operators send no `reboot`: false.
  ['REBOOT', (a) => a.reboot ?? false],
  ['ID', (a) => a.id],
];

/** sha256 of a file, read as a stream (a 50 MB artifact is never in memory whole). */
async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

interface PublishOptions {
  component: string;
  version: string;
  kind: string;
  file?: string;
  ref?: string;
  sha256?: string;
  key?: string;
  disruptive?: boolean;
  json?: boolean;
}

export function registerArtifactCommands(program: Command): void {
  const artifacts = program.command('artifacts').description('publish and manage signed artifacts');
  artifacts
    .command('publish')
    .description('hash and sign a file locally, upload it (streamed), print the artifact id; or publish an os-image by OCI reference (--ref, --sha256)')
    .requiredOption('--component <name>', 'component the artifact installs, e.g. node-agent')
    .requiredOption('--version <semver>', 'its version, e.g. 2.0.0')
    .requiredOption('--kind <kind>', `one of ${ARTIFACT_KINDS.join(', ')}`)
    .option('--file <path>', 'the artifact file')
    .option('--ref <oci-ref>', 'instead of --file, an os-image in an OCI registry: oci://HOST[:PORT]/REPO:TAG or …/REPO@sha256:…')
    .option('--sha256 <hex>', 'with --ref: the sha256 of the image blob the reference names (what is signed, and what the agent checks)')
    .option('--key <keyfile>', 'private signing key (drydock keys generate); without it the artifact is an unsigned draft')
    .option('--disruptive', 'installing it stops instances: nodes must be drained first')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: PublishOptions, command: Command) => {
        if (!isSemver(opts.version)) throw new Error(`--version must be a semantic version like 1.2.3, got "${opts.version}"`);
        if (!(ARTIFACT_KINDS as readonly string[]).includes(opts.kind)) throw new Error(`--kind must be one of ${ARTIFACT_KINDS.join(', ')}, got "${opts.kind}"`);
        if ((opts.file === undefined) === (opts.ref === undefined)) throw new Error('give either --file (upload it) or --ref (an os-image in an OCI registry), one of them');
        if (opts.ref !== undefined && !/^[0-9a-f]{64}$/.test(opts.sha256 ?? '')) throw new Error('--ref needs --sha256: the 64 lowercase hex digits of the image blob it names');
        if (opts.file !== undefined && opts.sha256 !== undefined) throw new Error('--sha256 goes with --ref; a file is hashed here');
        const sha256 = opts.file === undefined ? (opts.sha256 as string) : await sha256OfFile(opts.file);
        const query = new URLSearchParams({ component: opts.component, version: opts.version, kind: opts.kind, sha256 });
        if (opts.ref !== undefined) query.set('ref', opts.ref);
        if (opts.disruptive) query.set('disruptive', 'true');
        if (opts.key) {
          const privatePem = readFileSync(opts.key, 'utf8');
          query.set('signature', signArtifact(privatePem, { component: opts.component, version: opts.version, kind: opts.kind as ArtifactKind, sha256 }));
          query.set('public_key', createPublicKey(privatePem).export({ format: 'pem', type: 'spki' }).toString());
        }
        let artifact: ArtifactView;
        if (opts.file === undefined) {
          // By reference: no body, the image stays in its registry.
          artifact = await clientFor(command).request<ArtifactView>('POST', `/api/v1/artifacts?${query}`);
        } else {
          const size = statSync(opts.file).size;
          // Large files take a while on a slow link: allow a minute plus a second per MB.
          const timeoutMs = 60_000 + Math.ceil(size / 1_000_000) * 1000;
          artifact = await clientFor(command).upload<ArtifactView>(`/api/v1/artifacts?${query}`, fileBodyStream(opts.file), { timeoutMs });
        }
        if (opts.json) return printJson(artifact);
        process.stdout.write(`${artifact.id}\n`);
        const what = artifact.ref ? `by reference ${artifact.ref}` : `${artifact.size} bytes`;
        process.stderr.write(`published ${artifact.component} ${artifact.version} (${artifact.kind}, ${what}, sha256 ${artifact.sha256}, ${artifact.lifecycle})\n`);
      }),
    );

  artifacts
    .command('list')
    .description('list artifacts')
    .option('--component <name>', 'only this component')
    .option('--json', 'machine-readable output')
    .action(
      action(async (opts: { component?: string; json?: boolean }, command: Command) => {
        const query = opts.component ? `?component=${enc(opts.component)}` : '';
        printRows(await clientFor(command).get<ArtifactView[]>(`/api/v1/artifacts${query}`), columns, opts.json, 'no artifacts published');
      }),
    );

  artifacts
    .command('show <artifact>')
    .description('show one artifact, by id or as COMPONENT@VERSION')
    .option('--json', 'machine-readable output')
    .action(
      action(async (id: string, opts: { json?: boolean }, command: Command) => {
        const artifact = await clientFor(command).get<ArtifactView>(`/api/v1/artifacts/${enc(id)}`);
        if (opts.json) return printJson(artifact);
        printRows([artifact], columns, false, '');
        if (artifact.ref) process.stdout.write(`\nref: ${artifact.ref}`);
        process.stdout.write(`\nsha256: ${artifact.sha256}\nsigned by: ${artifact.key_id ?? '-'}\ncreated: ${artifact.created_at} by ${artifact.created_by}\n`);
      }),
    );

  for (const [verb, description] of [
    ['bless', 'mark a draft as tested and fit to roll out (signed artifacts only)'],
    ['promote', 'make a blessed artifact the live version of its component'],
    ['archive', 'retire an artifact (refused while a node runs it or would roll back to it)'],
  ] as const) {
    artifacts
      .command(`${verb} <artifact>`)
      .description(description)
      .option('--json', 'machine-readable output')
      .action(
        action(async (id: string, opts: { json?: boolean }, command: Command) => {
          const artifact = await clientFor(command).post<ArtifactView>(`/api/v1/artifacts/${enc(id)}/${verb}`);
          if (opts.json) return printJson(artifact);
          process.stdout.write(`${artifact.component} ${artifact.version} is ${artifact.lifecycle}\n`);
        }),
      );
  }
}

/** `drydock node set-version NODE COMPONENT VERSION`, added to the `node` command group. */
export function registerSetVersionCommand(node: Command): void {
  node
    .command('set-version <node> <component> [version]')
    .description('set the version of a component the node should run (its agent installs it): COMPONENT VERSION or COMPONENT@VERSION')
    .option('--force', 'a disruptive component although the node still hosts instances')
    .option('--rollback', 'an explicit rollback: the only way a lower version is installed')
    .option('--prestage', 'only download, verify and stage it (os-image: into the inactive slot); set the version again without it to install')
    .option('--json', 'machine-readable output')
    .action(
      action(async (nodeId: string, componentArg: string, versionArg: string | undefined, opts: { force?: boolean; rollback?: boolean; prestage?: boolean; json?: boolean }, command: Command) => {
        const ref = versionArg === undefined ? parseComponentRef(componentArg) : { component: componentArg, version: versionArg };
        if (!ref) throw new Error(`name the version: COMPONENT VERSION or COMPONENT@VERSION (like node-agent@2.0.0), got "${componentArg}"`);
        const { component, version } = ref;
        if (!isSemver(version)) throw new Error(`VERSION must be a semantic version like 1.2.3, got "${version}"`);
        const result = await clientFor(command).put<{ hostname: string; component: string; version: string; previous_version: string | null; rollback: boolean }>(
          `/api/v1/nodes/${enc(nodeId)}/components/${enc(component)}`,
          { version, ...(opts.force ? { force: true } : {}), ...(opts.rollback ? { rollback: true } : {}), ...(opts.prestage ? { prestage: true } : {}) },
        );
        if (opts.json) return printJson(result);
        const from = result.previous_version ? ` (from ${result.previous_version})` : '';
        process.stdout.write(`${result.hostname}: ${result.component} → ${result.version}${from}${result.rollback ? ', as a rollback' : ''}${opts.prestage ? ', pre-staged only' : ''}\n`);
      }),
    );
}
