import preact from "@preact/preset-vite";
import { defineConfig } from "vitest/config";

// The gateway serves dist/ at `/`; `npm run dev` proxies the API to a running `./dev up`.
const gateway = process.env.SWITCHBOARD_GATEWAY ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [preact()],
  build: { target: "es2022", sourcemap: false, assetsInlineLimit: 0 },
  server: {
    proxy: {
      "/v1": gateway,
      "/ws": { target: gateway.replace(/^http/, "ws"), ws: true },
    },
  },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
});
