@echo off
rem Shell completion for `kubectl milvus` through kubectl (see kubectl_complete-milvus).
if exist "%~dp0kubectl-milvus.exe" (
  "%~dp0kubectl-milvus.exe" __complete -- %*
) else (
  kubectl-milvus.exe __complete -- %*
)
