#!/bin/bash
# Scores /app/report: 1.0 when totals.csv and summary.txt are both right, else 0.0.
mkdir -p /logs/verifier
expected_totals=$'electronics,67\nhardware,400\nsupplies,23'
ok=1
if [ "$(cat /app/report/totals.csv 2>/dev/null)" != "$expected_totals" ]; then
  echo "totals.csv is missing or wrong"; ok=0
fi
if [ "$(tr -d '[:space:]' < /app/report/summary.txt 2>/dev/null)" != "490" ]; then
  echo "summary.txt is missing or wrong"; ok=0
fi
if [ "$ok" = 1 ]; then echo "report is correct"; echo 1.0 > /logs/verifier/reward.txt; else echo 0.0 > /logs/verifier/reward.txt; fi
