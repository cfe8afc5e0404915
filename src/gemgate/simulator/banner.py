"""What `gemgate simulate` prints when it is ready."""

from __future__ import annotations

from gemgate.simulator.config import SimConfig


def banner(config: SimConfig, port: int) -> str:
    url = f"http://{config.host}:{port}"
    key = config.projects[0].keys[0] if config.projects else "any-key"
    lines = [f"gemgate simulator — a stand-in for Google's Gemini API — listening on {url}", ""]
    for project in config.projects:
        lines.append(f"  project {project.name} ({project.tier}, {project.state}): "
                     + ", ".join(project.keys))
    lines += [
        "",
        "  These are simulated keys; nothing here reaches Google.",
        f"  Control: {url}/_sim/stats   {url}/_sim/faults",
        "",
        "from google import genai",
        "from google.genai import types",
        f'client = genai.Client(api_key="{key}",',
        f'                      http_options=types.HttpOptions(base_url="{url}"))',
        'print(client.models.generate_content(model="gemini-2.5-flash", contents="Hi").text)',
    ]
    return "\n".join(lines)
