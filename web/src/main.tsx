import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App, type DemoConfig } from "./App.js";
import "./style.css";

async function main(): Promise<void> {
  const root = createRoot(document.getElementById("root")!);
  const res = await fetch("/demo/config");
  if (!res.ok) {
    root.render(<p className="error">/demo/config answered {res.status}</p>);
    return;
  }
  const config = (await res.json()) as DemoConfig;
  root.render(
    <StrictMode>
      <App config={config} />
    </StrictMode>,
  );
  document.body.dataset.ready = "true";
}

void main();
