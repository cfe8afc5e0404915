"""`gemgate doctor`: every key, network and quota problem between this machine and Gemini,
found in order and explained with the fix, in English or Chinese — from the same problem table
(gemgate.problems) and answer classification (gemgate.upstream.classify) as the gateway."""
