// A typedoc plugin for the API reference (typedoc.json "plugin"):
// - names each module as it is imported: "cancelkit", "cancelkit/cancel", …
//   (typedoc would call the root module "index": index.CancellationToken.html);
// - drops the README's own "# cancelkit" heading from the landing page, which
//   already carries the project name as its title.
import { Converter } from "typedoc";

export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    const project = context.project;
    for (const module of project.children ?? []) {
      module.name = module.name === "index" ? project.name : `${project.name}/${module.name}`;
    }
    const first = project.readme?.[0];
    if (first?.kind === "text") first.text = first.text.replace(/^#\s+[^\n]*\n+/, "");
  });
}
