// TLS for drydock's own servers (operator, edge: --tls-cert/--tls-key) and trust for its
// clients (CLI, agent, edge, supervisor: --ca-file). Clients speak through Node's fetch, whose
// connections come from one global dispatcher: trusting a CA file replaces it with one whose
// TLS connections accept that CA beside the system's roots (what NODE_EXTRA_CA_CERTS does,
// but chosen on the command line and checked at start).
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Agent, setGlobalDispatcher } from 'undici';

export interface ServerTls {
  cert: Buffer;
  key: Buffer;
}

function readPem(file: string, what: string, option: string): Buffer {
  let text: Buffer;
  try {
    text = readFileSync(file);
  } catch (error) {
    throw new Error(`${option} ${file}: cannot read the ${what} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
  }
  if (!text.includes('-----BEGIN ')) throw new Error(`${option} ${file}: not a PEM file (expected a ${what} in PEM form)`);
  return text;
}

/** The certificate and key to serve HTTPS with, or undefined for plain HTTP; one without the other is refused. */
export function serverTlsFrom(options: { tlsCert?: string | undefined; tlsKey?: string | undefined }): ServerTls | undefined {
  if (!options.tlsCert && !options.tlsKey) return undefined;
  if (!options.tlsCert || !options.tlsKey) throw new Error('pass --tls-cert and --tls-key together (the certificate chain and its private key, PEM)');
  return { cert: readPem(options.tlsCert, 'certificate', '--tls-cert'), key: readPem(options.tlsKey, 'private key', '--tls-key') };
}

/** Every fetch of this process trusts the CA(s) in `file` besides the system's roots. */
export function trustCaFile(file: string): void {
  const ca = readPem(file, 'CA certificate', '--ca-file');
  setGlobalDispatcher(new Agent({ connect: { ca: [...rootCertificates, ca.toString('utf8')] } }));
}
