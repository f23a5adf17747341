// Package alarm keeps the cluster's alarms (NOSPACE, CORRUPT) as replicated
// state: alarms are raised and cleared only through Raft, so every member
// refuses the same requests at the same log position.
package alarm
