// The API reference page (/docs): /openapi.json rendered as endpoints and schemas, grouped by tag.
// Everything from the document goes in as text (dom.h), never as HTML; backticks become <code>.

import { $, h } from "./dom.js";

const REF = "#/components/schemas/";
const RULES = [
  ["minimum", "≥ "],
  ["exclusiveMinimum", "> "],
  ["maximum", "≤ "],
  ["exclusiveMaximum", "< "],
  ["multipleOf", "multiple of "],
  ["minLength", "at least {} characters"],
  ["maxLength", "at most {} characters"],
  ["minItems", "at least {} items"],
  ["maxItems", "at most {} items"],
];

function inline(text) {
  return text.split("`").map((part, index) => (index % 2 ? h("code", {}, part) : part));
}

/** Paragraphs at blank lines, code spans at backticks. */
function prose(text) {
  return h("div", { class: "prose" }, text.split(/\n\s*\n/).map((paragraph) => h("p", {}, inline(paragraph))));
}

function interleave(parts, separator) {
  return parts.flatMap((part, index) => (index ? [separator, ...part] : part));
}

function schemaLink(ref) {
  const name = ref.startsWith(REF) ? ref.slice(REF.length) : ref;
  return h("a", { class: "type-ref", href: `#schema-${name}` }, name);
}

/** A schema's type in words, with links to named schemas: `array of TaskOutput`, `integer | null`. */
function typeOf(schema) {
  if (!schema || Object.keys(schema).length === 0) return ["any"];
  if (schema.$ref) return [schemaLink(schema.$ref)];
  const union = schema.anyOf ?? schema.oneOf;
  if (union) return interleave(union.map(typeOf), " | ");
  if (schema.enum) return interleave(schema.enum.map((value) => [h("code", {}, JSON.stringify(value))]), " | ");
  if ("const" in schema) return [h("code", {}, JSON.stringify(schema.const))];
  if (schema.type === "array") return ["array of ", ...typeOf(schema.items)];
  if (schema.type === "object" && typeof schema.additionalProperties === "object") {
    return ["map of ", ...typeOf(schema.additionalProperties)];
  }
  return [schema.type ?? "any"];
}

/** The limits of a value (its union's branches included) as short phrases: `≥ 64`, `multiple of 8`. */
function limits(schema) {
  const branches = [schema, ...(schema.anyOf ?? schema.oneOf ?? [])];
  const phrases = [];
  for (const branch of branches) {
    for (const [rule, words] of RULES) {
      if (rule in branch) phrases.push(words.includes("{}") ? words.replace("{}", branch[rule]) : words + branch[rule]);
    }
  }
  if ("default" in schema) phrases.push(`default ${JSON.stringify(schema.default)}`);
  return phrases;
}

function about(schema) {
  const phrases = limits(schema);
  return [
    ...(schema.description ? inline(schema.description) : []),
    phrases.length ? h("span", { class: "limits" }, phrases.join(" · ")) : null,
  ];
}

/** A path with a line break allowed before each `/`, so that a narrow column breaks it there. */
function breakable(path) {
  return path.split("/").flatMap((part, index) => (index ? [h("wbr"), `/${part}`] : [part]));
}

function fieldTable(schema) {
  const required = new Set(schema.required ?? []);
  const rows = Object.entries(schema.properties ?? {}).map(([name, field]) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, h("code", {}, name), required.has(name) ? h("span", { class: "required" }, "required") : null),
      h("td", { class: "type" }, typeOf(field)),
      h("td", {}, about(field)),
    ),
  );
  return h(
    "table",
    { class: "fields" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Type"), h("th", { scope: "col" }, "About"))),
    h("tbody", {}, rows),
  );
}

function schemaCard(name, schema) {
  const body = [];
  if (schema.properties) body.push(fieldTable(schema));
  else body.push(h("p", {}, "One of: ", typeOf(schema)));
  if (schema.additionalProperties === false) body.push(h("p", { class: "note" }, "No other field is accepted."));
  return h(
    "article",
    { class: "panel schema", id: `schema-${name}` },
    h("h3", {}, name),
    schema.description ? prose(schema.description) : null,
    body,
  );
}

/** How a security scheme is sent: `Authorization: Bearer`, the header's name, or `?token=`. */
function credential(name, schemes) {
  const scheme = schemes[name];
  if (!scheme) return name;
  if (scheme.type === "http") return `Authorization: ${scheme.scheme === "bearer" ? "Bearer" : scheme.scheme} …`;
  return scheme.in === "query" ? `?${scheme.name}=…` : `${scheme.name}: …`;
}

function access(security, schemes) {
  if (!security) return h("p", { class: "access" }, h("strong", {}, "Open:"), " no credential.");
  const ways = security.map((requirement) => {
    const names = Object.keys(requirement);
    if (!names.length) return [h("span", { class: "way" }, "none (see above)")];
    return [h("span", { class: "way" }, interleave(names.map((name) => [h("code", {}, credential(name, schemes))]), " + "))];
  });
  return h("p", { class: "access" }, h("strong", {}, "Credentials, one of:"), " ", interleave(ways, " "));
}

function parameterTable(parameters) {
  if (!parameters?.length) return null;
  const rows = parameters.map((parameter) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, h("code", {}, parameter.name), parameter.required ? h("span", { class: "required" }, "required") : null),
      h("td", {}, parameter.in),
      h("td", { class: "type" }, typeOf(parameter.schema)),
      h("td", {}, parameter.description ? inline(parameter.description) : null, " ", h("span", { class: "limits" }, limits(parameter.schema ?? {}).join(" · "))),
    ),
  );
  return h(
    "div",
    { class: "block" },
    h("h4", {}, "Parameters"),
    h(
      "table",
      { class: "fields" },
      h("thead", {}, h("tr", {}, ["Name", "In", "Type", "About"].map((title) => h("th", { scope: "col" }, title)))),
      h("tbody", {}, rows),
    ),
  );
}

function contentList(content) {
  return Object.entries(content ?? {}).map(([media, described]) =>
    h(
      "li",
      {},
      h("code", { class: "media" }, media),
      " ",
      typeOf(described.schema),
      described["x-event-data"] ? [" — each event's data: ", ...typeOf(described["x-event-data"])] : null,
    ),
  );
}

/** Each example request of a body: what it does, and the JSON to send. */
function examples(content) {
  const shown = Object.values(content ?? {}).flatMap((described) => Object.values(described.examples ?? {}));
  return shown.map((example) =>
    h("figure", { class: "example" }, h("figcaption", {}, inline(example.summary ?? "")), h("pre", {}, h("code", {}, JSON.stringify(example.value, null, 2)))),
  );
}

function requestBody(body) {
  if (!body) return null;
  return h("div", { class: "block" }, h("h4", {}, "Request body"), h("ul", { class: "content" }, contentList(body.content)), examples(body.content));
}

function responses(replies) {
  const items = Object.entries(replies).map(([status, reply]) =>
    h(
      "li",
      { class: "response" },
      h("span", { class: "status", dataset: { kind: status[0] } }, status),
      h(
        "div",
        {},
        h("p", {}, inline(reply.description)),
        reply.content ? h("ul", { class: "content" }, contentList(reply.content)) : null,
        reply.headers ? h("p", { class: "note" }, "Headers: ", interleave(Object.keys(reply.headers).map((name) => [h("code", {}, name)]), ", ")) : null,
      ),
    ),
  );
  return h("div", { class: "block" }, h("h4", {}, "Responses"), h("ul", { class: "responses" }, items));
}

function operationCard(path, method, operation, schemes) {
  return h(
    "article",
    { class: "panel operation", id: `op-${operation.operationId}` },
    h("h3", { class: "op-title" }, h("span", { class: "method", dataset: { method } }, method.toUpperCase()), h("code", { class: "path" }, path)),
    h("p", { class: "op-summary" }, operation.summary),
    operation.description ? prose(operation.description) : null,
    access(operation.security, schemes),
    parameterTable(operation.parameters),
    requestBody(operation.requestBody),
    responses(operation.responses),
  );
}

/** Every operation, grouped by its (first) tag in the document's order of tags. */
function byTag(api) {
  const groups = new Map((api.tags ?? []).map((tag) => [tag.name, []]));
  for (const [path, operations] of Object.entries(api.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const tag = operation.tags?.[0] ?? "Other";
      if (!groups.has(tag)) groups.set(tag, []);
      groups.get(tag).push({ path, method, operation });
    }
  }
  return groups;
}

function render(api) {
  const schemes = api.components?.securitySchemes ?? {};
  $("#version").textContent = `${api.info.title} ${api.info.version} · OpenAPI ${api.openapi}`;
  $("#intro").replaceChildren(prose(api.info.description ?? ""));
  $("#schemes").replaceChildren(
    h("h2", {}, "Credentials"),
    h(
      "dl",
      { class: "schemes" },
      Object.entries(schemes).flatMap(([name, scheme]) => [h("dt", {}, h("code", {}, credential(name, schemes))), h("dd", {}, inline(scheme.description ?? ""))]),
    ),
  );
  const groups = byTag(api);
  $("#toc").replaceChildren(
    ...[...groups].map(([tag, entries]) =>
      h(
        "div",
        { class: "toc-group" },
        h("h3", {}, tag),
        h(
          "ul",
          {},
          entries.map(({ path, method, operation }) =>
            h(
              "li",
              {},
              h("a", { href: `#op-${operation.operationId}` }, h("span", { class: "method", dataset: { method } }, method.toUpperCase()), h("span", { class: "path" }, breakable(path))),
            ),
          ),
        ),
      ),
    ),
  );
  $("#endpoints").replaceChildren(
    ...[...groups].map(([tag, entries]) =>
      h(
        "section",
        { class: "group", "aria-label": tag },
        h("h2", { class: "group-title" }, tag),
        entries.map(({ path, method, operation }) => operationCard(path, method, operation, schemes)),
      ),
    ),
  );
  $("#schema-list").replaceChildren(...Object.entries(api.components?.schemas ?? {}).map(([name, schema]) => schemaCard(name, schema)));
  if (location.hash) document.getElementById(decodeURIComponent(location.hash.slice(1)))?.scrollIntoView();
}

async function load() {
  try {
    const response = await fetch("/openapi.json");
    if (!response.ok) throw new Error(`/openapi.json answered ${response.status}`);
    render(await response.json());
  } catch (error) {
    const note = $("#load-error");
    note.textContent = `Could not load the API description: ${error.message}`;
    note.hidden = false;
  }
}

load();
