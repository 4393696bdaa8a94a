// k8s_validate.mjs TOOLS_DIR DOCS.json — validates rendered Kubernetes
// objects offline, two ways, and prints one line per object:
//  1. kubernetes-models: validators compiled from the Kubernetes OpenAPI
//     schemas (and the prometheus-operator CRDs): types, required fields,
//     enums, formats. An apiVersion/kind it does not know is an error.
//  2. strict fields: the generated models of @kubernetes/client-node list
//     every field of every type; a key that is not a field of its type
//     (a typo, a field at the wrong level) is an error, as the API
//     server's strict field validation would say.
// Exit status 1 when any object fails, 2 on bad usage.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [tools, docsFile] = process.argv.slice(2);
if (!tools || !docsFile) {
  console.error('usage: node k8s_validate.mjs TOOLS_DIR DOCS.json');
  process.exit(2);
}
const docs = JSON.parse(fs.readFileSync(docsFile, 'utf8'));
const modelsDir = path.join(tools, 'client-node/package/dist/gen/models');

// "apps/v1" + "Deployment" -> the kubernetes-models module exporting it.
function modelsModule(apiVersion, kind) {
  const crd = { 'monitoring.coreos.com': '@kubernetes-models/prometheus-operator' };
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0] : '';
  const pkg = crd[group] || 'kubernetes-models';
  // The packages export ESM only, under these paths.
  return path.join(tools, 'k8s/node_modules', pkg, apiVersion, `${kind}.js`);
}

// "apps/v1" + "Deployment" -> "V1Deployment"; "autoscaling/v2" -> "V2..."
function clientClass(apiVersion, kind) {
  const v = apiVersion.split('/').pop();
  return v.charAt(0).toUpperCase() + v.slice(1) + kind;
}

const typeCache = new Map();
async function attributes(type) {
  if (!typeCache.has(type)) {
    const f = path.join(modelsDir, `${type}.js`);
    let attrs = null;
    if (fs.existsSync(f)) {
      const mod = await import(pathToFileURL(f).href);
      attrs = mod[type].getAttributeTypeMap();
    }
    typeCache.set(type, attrs);
  }
  return typeCache.get(type);
}

// Unknown keys of value (of client-node type `type`), as JSON paths.
async function unknownFields(value, type, where, out) {
  if (value === null || value === undefined) return;
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) await unknownFields(value[i], m[1], `${where}[${i}]`, out);
    }
    return;
  }
  if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    if (typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) await unknownFields(v, m[1], `${where}.${k}`, out);
    }
    return;
  }
  const attrs = await attributes(type);
  if (!attrs || typeof value !== 'object' || Array.isArray(value)) return;
  const known = new Map(attrs.map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    if (!known.has(k)) out.push(`${where}.${k}: unknown field of ${type}`);
    else await unknownFields(v, known.get(k), `${where}.${k}`, out);
  }
}

let failed = 0;
for (const doc of docs) {
  const id = `${doc?.kind}/${doc?.metadata?.name}`;
  const errors = [];
  if (!doc || typeof doc.apiVersion !== 'string' || typeof doc.kind !== 'string') {
    errors.push('no apiVersion/kind');
  } else {
    let Model = null;
    try {
      const mod = await import(pathToFileURL(modelsModule(doc.apiVersion, doc.kind)).href);
      Model = mod[doc.kind];
    } catch (e) {
      errors.push(`no schema for ${doc.apiVersion} ${doc.kind}`);
    }
    if (Model) {
      try {
        new Model(doc).validate();
      } catch (e) {
        errors.push(String(e.message || e));
      }
    }
    const cls = clientClass(doc.apiVersion, doc.kind);
    if (await attributes(cls)) await unknownFields(doc, cls, '', errors);
    else if (!doc.apiVersion.startsWith('monitoring.coreos.com/')) errors.push(`no field list for ${cls}`);
  }
  if (errors.length) {
    failed++;
    console.log(`FAIL ${id}: ${errors.join('; ')}`);
  } else {
    console.log(`ok ${id}`);
  }
}
console.log(`${docs.length - failed} valid, ${failed} invalid`);
process.exit(failed ? 1 : 0);
