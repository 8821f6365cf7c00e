/// <reference types="vitest" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// Built into the Python package so `pharos serve` serves it at `/` (src/pharos/server/web).
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "../src/pharos/server/web/dist",
    emptyOutDir: true,
    // No inline module-preload polyfill: the CSP allows only scripts from the origin.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 800,
  },
  server: { proxy: { "/api": { target: "http://127.0.0.1:4318", ws: true } } },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
