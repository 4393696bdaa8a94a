{{/*
Names, labels, images and the worker security profiles shared by every
template. Object names: "<fullname>-gateway", "<fullname>-<runtime>".
*/}}

{{- define "corral.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "corral.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<suffix>", kept within the 63 characters of a DNS label. */}}
{{- define "corral.component" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "corral.fullname" $root | trunc (int (sub 62 (len (index . 1))))) (index . 1) | trimSuffix "-" -}}
{{- end -}}

{{- define "corral.selectorLabels" -}}
app.kubernetes.io/name: {{ include "corral.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "corral.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "corral.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: corral
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector of the gateway pods. */}}
{{- define "corral.gatewaySelector" -}}
{{ include "corral.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{/* Selector of one runtime's worker pods: (list $ $runtime). */}}
{{- define "corral.workerSelector" -}}
{{ include "corral.selectorLabels" (index . 0) }}
app.kubernetes.io/component: worker
corral.dev/runtime: {{ (index . 1).name }}
{{- end -}}

{{/* Selector of every worker pod of the release. */}}
{{- define "corral.allWorkersSelector" -}}
{{ include "corral.selectorLabels" . }}
app.kubernetes.io/component: worker
{{- end -}}

{{/* An image reference: (list $ .image) with repository and tag. */}}
{{- define "corral.image" -}}
{{- $root := index . 0 -}}
{{- $img := index . 1 -}}
{{- $repo := $img.repository -}}
{{- with $root.Values.image.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}{{ end -}}
{{- $tag := $img.tag | default $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{- define "corral.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "corral.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The gateway <-> worker shared secret's Secret name. */}}
{{- define "corral.workerAuthSecret" -}}
{{- .Values.workerAuth.existingSecret | default (include "corral.component" (list . "worker-auth")) -}}
{{- end -}}

{{/* The gateway's API key Secret name. */}}
{{- define "corral.authSecret" -}}
{{- .Values.gateway.auth.existingSecret | default (include "corral.component" (list . "api-keys")) -}}
{{- end -}}

{{/* "k=v,k=v" from a limits map, keys sorted. */}}
{{- define "corral.limits" -}}
{{- $out := list -}}
{{- range $k, $v := . }}{{ $out = append $out (printf "%s=%v" $k $v) }}{{ end -}}
{{- join "," $out -}}
{{- end -}}

{{/*
The security contexts of a worker for an isolation profile: (list $ level).
The profiles are named after the sandbox level the processor reaches with
them (its `info` reports the level; CORRAL_MIN_ISOLATION makes a pod that
cannot reach it refuse to start). Measured with podman on a hybrid
cgroup-v1 node (tests/images/test_images.py::test_isolation_profiles):
  full          privileged: the only way to get a writable cgroup tree
                (memory/pids limits) in an ordinary container
  namespaces    root + SETUID SETGID SETPCAP KILL CHOWN FOWNER
                DAC_OVERRIDE SYS_ADMIN NET_ADMIN, AppArmor unconfined
                (mount/pivot_root), seccomp RuntimeDefault
  seccomp       root + SETUID SETGID SETPCAP KILL CHOWN FOWNER DAC_OVERRIDE
  unprivileged  uid 999, no capability: no per-slot uid
Without a writable cgroup tree (every profile but full) and without a
mount namespace (seccomp, unprivileged), memory_bytes is not enforced on
shared memory, and without a slot uid (unprivileged) pids is not either:
such a worker refuses every run unless told to accept that
(CORRAL_UNENFORCED_LIMITS, corral.unenforcedLimits); only the pod's own
limits bound a run there.
*/}}
{{- define "corral.workerPodSecurity" -}}
{{- $level := index . 1 -}}
{{- if eq $level "unprivileged" }}
runAsNonRoot: true
runAsUser: 999
runAsGroup: 999
fsGroup: 999
{{- else }}
runAsUser: 0
runAsGroup: 0
{{- end }}
seccompProfile:
  type: {{ if eq $level "full" }}Unconfined{{ else }}RuntimeDefault{{ end }}
{{- end -}}

{{- define "corral.workerContainerSecurity" -}}
{{- $level := index . 1 -}}
readOnlyRootFilesystem: true
{{- if eq $level "full" }}
privileged: true
allowPrivilegeEscalation: true
{{- else if eq $level "namespaces" }}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
  add: [SETUID, SETGID, SETPCAP, KILL, CHOWN, FOWNER, DAC_OVERRIDE, SYS_ADMIN, NET_ADMIN]
appArmorProfile:
  type: Unconfined
{{- else if eq $level "seccomp" }}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
  add: [SETUID, SETGID, SETPCAP, KILL, CHOWN, FOWNER, DAC_OVERRIDE]
{{- else }}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
{{- end }}
{{- end -}}

{{/* The limits a worker of a profile cannot enforce, accepted (above). */}}
{{- define "corral.unenforcedLimits" -}}
{{- if eq . "seccomp" -}}memory{{- else if eq . "unprivileged" -}}memory,pids{{- end -}}
{{- end -}}

{{/* The minimum sandbox level a worker of a profile must reach. */}}
{{- define "corral.minIsolation" -}}
{{- $level := index . 1 -}}
{{- $root := index . 0 -}}
{{- if $root.Values.worker.minIsolation -}}
{{- $root.Values.worker.minIsolation -}}
{{- else if eq $level "unprivileged" -}}
seccomp
{{- else -}}
{{- $level -}}
{{- end -}}
{{- end -}}

{{/*
A map of defaults with an override's keys laid over it, as JSON:
(list defaults override). Unlike mergeOverwrite, a false or 0 in the
override wins (e.g. autoscaling.enabled: false on one runtime).
*/}}
{{- define "corral.overlay" -}}
{{- $out := deepCopy (index . 0) -}}
{{- range $k, $v := (index . 1 | default dict) }}{{ $_ := set $out $k $v }}{{ end -}}
{{- toJson $out -}}
{{- end -}}

{{/*
A runtime's fast paths, as JSON {"prewarm": bool, "zygote": bool}:
(list $ $runtime level). A runtime's own prewarm/zygote override
`worker`'s (a false wins too). Fails the install for what the worker
would refuse at start-up, since a crash-looping pod is worse than a failed
install: zygote below the `namespaces` sandbox level (profiles `seccomp`
and `unprivileged`), where the fork server's children could not be held
in the run's pid namespace (docs/isolation.md, "Fork server").
*/}}
{{- define "corral.accel" -}}
{{- $root := index . 0 -}}
{{- $rt := index . 1 -}}
{{- $level := index . 2 -}}
{{- $w := $root.Values.worker -}}
{{- $prewarm := hasKey $rt "prewarm" | ternary $rt.prewarm $w.prewarm -}}
{{- $zygote := hasKey $rt "zygote" | ternary $rt.zygote $w.zygote -}}
{{- if and $zygote (not (has $level (list "full" "namespaces"))) -}}
{{- fail (printf "runtime %q: zygote: true needs isolation full or namespaces, not %s (the worker refuses --zygote on below sandbox level namespaces and would crash-loop); set isolation: namespaces (or full) for this runtime, or zygote: false" $rt.name $level) -}}
{{- end -}}
{{- toJson (dict "prewarm" (not (not $prewarm)) "zygote" (not (not $zygote))) -}}
{{- end -}}
