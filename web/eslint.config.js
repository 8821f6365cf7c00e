import js from "@eslint/js";
import globals from "globals";
import reactHooks from "eslint-plugin-react-hooks";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules", "../src/pharos/server/web/dist"] },
  {
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    files: ["src/**/*.{ts,tsx}"],
    languageOptions: { ecmaVersion: 2022, globals: globals.browser },
    plugins: { "react-hooks": reactHooks },
    rules: {
      ...reactHooks.configs.recommended.rules,
      // Everything from telemetry is rendered as text: no raw HTML sinks, ever.
      "no-restricted-properties": [
        "error",
        { property: "innerHTML", message: "Render telemetry as text (XSS)." },
        { property: "outerHTML", message: "Render telemetry as text (XSS)." },
        { property: "insertAdjacentHTML", message: "Render telemetry as text (XSS)." },
      ],
      "no-restricted-syntax": [
        "error",
        {
          selector: "JSXAttribute[name.name='dangerouslySetInnerHTML']",
          message: "Render telemetry as text (XSS).",
        },
      ],
      "no-eval": "error",
      "no-implied-eval": "error",
    },
  },
);
