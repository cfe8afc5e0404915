"""Guardrails: sensitive data found and masked before a prompt leaves for Google (and put back
in the answer where asked), and the operator's rules that refuse bad prompts. The pipeline's
`guardrails` stage (pipeline/guardrails.py) applies them; each module here is one concept."""
